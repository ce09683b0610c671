"""Test settings: embedded defaults, fast, no network."""

from .base import *  # noqa: F403

DEBUG = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not SQLite's in-memory database: its shared cache locks whole tables and
    # does not wait, while workflows and chat turns write from several threads at once
    # (as they do on the file database `make run` uses). pytest-xdist adds a suffix.
    VAR_DIR.mkdir(exist_ok=True)  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SUPERORCH_LOCAL_MODEL_DELAY = 0.0
SUPERORCH_MODEL_RETRY_BACKOFF = 0.01
SUPERORCH_ALERT_INTERVAL = 0  # tests evaluate alert rules themselves
# A test that edits the registry routes with the edited one.
SUPERORCH_ROUTER_RETRAIN = "inline"
SUPERORCH_ROUTER_CACHE_DIR = ""  # hermetic: every test process trains its own routers
# Generous so protocol tests are not throttled unless they ask to be.
SUPERORCH_RATE_LIMIT = "1000/minute"
OPENAI_API_KEY = ""
OPENAI_BASE_URL = ""
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
