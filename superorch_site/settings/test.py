"""Test settings: the embedded defaults, fast, no network, whatever the shell exports.

base.py reads an empty environment here (environment.hermetic), so an exported
CELERY_BROKER_URL, REDIS_URL, DATABASE_URL or OPENAI_API_KEY changes nothing:
eager Celery, the in-memory channel layer, memory rate-limit storage, the local
offline model and a SQLite file test database, always
(tests/superorch_site/test_settings.py checks it).
"""

from .environment import hermetic

hermetic()

from .base import *  # noqa: E402, F403
from .base import (  # noqa: E402
    INSTALLED_APPS,
    LOOPBACK_HOSTS,
    LOOPBACK_NETWORKS,
    SQLITE_URL,
    VAR_DIR,
    database_config,
)

DEBUG = False
SECRET_KEY = "tests-only-secret-key-superorch-0123456789abcdefghijklmnopqrstuvwxyz"
ALLOWED_HOSTS = [*LOOPBACK_HOSTS, "testserver"]
SUPERORCH_METRICS_ALLOW = LOOPBACK_NETWORKS
SUPERORCH_APP_ORIGINS = ["http://localhost", "http://testserver"]  # the tests' Origin headers
INSTALLED_APPS = [*INSTALLED_APPS, "demo"]  # the demo's own tests (tests/demo/)

# A file, not SQLite's in-memory database: its shared cache locks whole tables and does
# not wait, while workflows and chat turns write from several threads at once (as they
# do on the file database `make run` uses). pytest-xdist adds a suffix.
VAR_DIR.mkdir(exist_ok=True)
DATABASES = {"default": database_config(SQLITE_URL)}
DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SUPERORCH_LOCAL_MODEL_DELAY = 0.0
SUPERORCH_MODEL_RETRY_BACKOFF = 0.01
SUPERORCH_ALERT_INTERVAL = 0  # tests evaluate alert rules themselves
SUPERORCH_ROLLUP_INTERVAL = 0  # and roll up runs themselves
# A test that edits the registry routes with the edited one.
SUPERORCH_ROUTER_RETRAIN = "inline"
# Words only, so no test waits seconds for embeddings; the answer tests turn them on.
SUPERORCH_KNOWLEDGE_EMBEDDINGS = "off"
SUPERORCH_ROUTER_CACHE_DIR = ""  # hermetic: every test process trains its own routers
# The input guardrail trains on shipped rows only (9 s): saved once, signed with the tests'
# key and named by a hash of its training rows, so every test process loads the same one.
SUPERORCH_GUARDRAIL_CACHE_DIR = str(VAR_DIR / "test-guardrails")
# Scripted models answer the calls a test scripts: the model's own input check would be
# one more. Its tests turn it on (tests/orchestrator/test_guardrails_runtime.py).
SUPERORCH_GUARDRAIL_LLM = False
# Generous so protocol tests are not throttled unless they ask to be.
SUPERORCH_RATE_LIMIT = "1000/minute"
SUPERORCH_STAFF_API_RATE = "100000/minute"
SUPERORCH_CLIENT_MAX_SOCKETS = 0  # tests open many sockets from one address
SUPERORCH_CLIENT_NEW_CONVERSATION_RATE = "100000/minute"
SUPERORCH_CLIENT_MESSAGE_RATE = "100000/minute"
# No background sweep in the web process: a test sweeps when it means to (chat.turns.sweep_once).
SUPERORCH_PENDING_SWEEP_INTERVAL = 0.0
# The seeded demo actions' host, and the hosts the action tests mock (httpx MockTransport).
SUPERORCH_ACTION_HOSTS = ["127.0.0.1:8001", "backend.test", "other.test:8443"]
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
# Attachments land here unless a test gives its own directory (tests/chat/test_attachments.py).
MEDIA_ROOT = str(VAR_DIR / "test-media")
