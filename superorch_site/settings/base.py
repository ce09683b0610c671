"""Base settings: what every settings module shares, with safe defaults.

DEBUG off, no secret key, no allowed host (local.py, production.py and test.py
set them). Otherwise the embedded defaults: SQLite file var/db.sqlite3, in-memory
channel layer, eager Celery, the local offline model.

Every variable of the environment is read here, once, through
superorch_site.settings.environment (the INTEGRATION_* ones in integration.py), and
listed in docs/configuration.md. The other modules only override: they never read
the environment again. Importing this module creates nothing on disk.
"""

import base64
import binascii
import ipaddress
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from .environment import env

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"  # created by local.py and test.py, not here

# --- Core -------------------------------------------------------------------
# Empty unless set: Django refuses to start without one (local.py has a dev-only key,
# production.py refuses to start without DJANGO_SECRET_KEY).
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
# Encryption at rest of message texts, notes and context values (docs/privacy.md): Fernet
# keys, comma-separated; the first encrypts, every one decrypts (add a new key in front,
# run `manage.py rotate_keys`, then drop the old one). Empty: derived from SECRET_KEY (and
# SECRET_KEY_FALLBACKS), fine for development; production.py refuses to start without it.
SUPERORCH_FIELD_KEYS = env.list("SUPERORCH_FIELD_KEYS", default=[])


def _check_field_keys(keys: list[str]) -> None:
    for number, key in enumerate(keys, 1):
        try:
            valid = len(base64.urlsafe_b64decode(key.encode())) == 32
        except (binascii.Error, ValueError):
            valid = False
        if not valid:
            raise ImproperlyConfigured(
                f"SUPERORCH_FIELD_KEYS: key {number} is not a Fernet key (32 bytes in URL-safe "
                "base64; make one with `manage.py rotate_keys --new-key`)."
            )


_check_field_keys(SUPERORCH_FIELD_KEYS)
DEBUG = False
# Empty unless set: with DEBUG off no host is served (local.py and test.py serve loopback).
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[])
LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "superorch_site",  # before daphne: its runserver (superorch_site.server's settings) wins
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "channels",
    "django_htmx",
    "auditlog",  # changes to the registry, actions, sites... with before/after (docs/security.md)
    "orchestrator",
    "chat",
]

MIDDLEWARE = [
    "superorch_site.middleware.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "auditlog.middleware.AuditlogMiddleware",  # who made a change (the request's user)
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "superorch_site.middleware.ContentSecurityPolicyMiddleware",
]

# django-auditlog: no client address (it would trust any X-Forwarded-For: chat/clients.py is
# where addresses are read), and no log entries of its own about its own admin.
AUDITLOG_DISABLE_REMOTE_ADDR = True

ROOT_URLCONF = "superorch_site.urls"
ASGI_APPLICATION = "superorch_site.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
SQLITE_URL = f"sqlite:///{VAR_DIR / 'db.sqlite3'}"


def database_config(url: str, *, conn_max_age: int = 0) -> dict[str, Any]:
    """The `default` database for a URL (django-environ syntax), tuned for SQLite."""
    config = env.db_url_config(url)
    if config["ENGINE"] != "django.db.backends.sqlite3":
        config["CONN_MAX_AGE"] = conn_max_age
        return config
    # WAL and a busy timeout let the chat's worker threads write side by side.
    config.setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # Keep each thread's connection: opening one (and its pragmas) cost a tenth of a
    # chat turn's time in the overhead benchmark (docs/benchmarks.md).
    config["CONN_MAX_AGE"] = None
    return config


# Empty unless set (the SQLite file); production.py refuses to start without it.
DATABASE_URL = env.str("DATABASE_URL", default="")
# Seconds a PostgreSQL connection is kept (SQLite keeps its connections): the chat's
# database calls run in worker threads, and a new connection for each of them (Django's
# default, 0) halved the turns a web process answers (`python -m bench servers`).
DJANGO_CONN_MAX_AGE = env.int("DJANGO_CONN_MAX_AGE", default=60)
DATABASES = {
    "default": database_config(DATABASE_URL or SQLITE_URL, conn_max_age=DJANGO_CONN_MAX_AGE)
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channels -----------------------------------------------------------------


def redis_layer_host(url: str) -> dict:
    """A channels_redis host whose reads outlast its blocking pops. redis-py 8 times reads
    out after 5 s, exactly channels_redis' BZPOPMIN wait: under load the client gave up
    first and the socket died with 1011 (found by `python -m bench servers`)."""
    return {"address": url, "socket_timeout": 30, "socket_connect_timeout": 5}


def channel_layers(redis_url: str, local_capacity: int = 50000) -> dict[str, Any]:
    """CHANNEL_LAYERS: Redis at `redis_url`, or the in-memory layer when it is empty.

    On Redis every process-local channel of a process (all its sockets, its turns' cancel
    listeners) shares ONE receive key, `specific.<process>!`: its capacity is the
    process's, not a socket's. 1,500 let the live streams of 20 conversations overflow it
    and frames were dropped; `local_capacity` (SUPERORCH_CHANNEL_CAPACITY) sizes it for
    hundreds of streams (a message is a few hundred bytes, expired after 30 s)."""
    if redis_url:
        return {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {
                    "hosts": [redis_layer_host(redis_url)],
                    "capacity": 1500,
                    "channel_capacity": {"specific.*": local_capacity},
                    "expiry": 30,
                },
            }
        }
    # The in-memory layer's default capacity (100 per channel) silently drops frames of a
    # fast stream (deltas) before the socket drains them; match the Redis layer's capacity.
    # chat.layers: channels' in-memory layer, cheaper per message (its docstring).
    return {
        "default": {"BACKEND": "chat.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1500}}
    }


REDIS_URL = env.str("REDIS_URL", default="")
# Messages a process's receive key on the Redis layer holds (all its sockets share it).
SUPERORCH_CHANNEL_CAPACITY = env.int("SUPERORCH_CHANNEL_CAPACITY", default=50000)
CHANNEL_LAYERS = channel_layers(REDIS_URL, SUPERORCH_CHANNEL_CAPACITY)

# --- Celery -------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
# Redis (and SQS) brokers hand an unacknowledged task to another worker only after this
# many seconds; RabbitMQ does it as soon as the worker's connection drops.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
}

# --- Auth, i18n, static -------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The chat page and the widget speak these (docs/widget.md, "Languages"); the admin and the
# staff pages stay in English (no LocaleMiddleware: chat views activate a language each).
LANGUAGE_CODE = "en"
LANGUAGES = [
    ("en", "English"),
    ("de", "Deutsch"),
    ("fr", "Français"),
    ("es", "Español"),
    ("ar", "العربية"),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

# Users' attachments (docs/attachments.md) go through Django's storage API: files under
# MEDIA_ROOT by default (var/media, never served as static files: the chat's download view
# checks who asks); production may set STORAGES["default"] to S3-compatible storage
# (django-storages, the `s3` extra). MEDIA_URL is unused: no file has a public URL.
MEDIA_ROOT = env.str("DJANGO_MEDIA_ROOT", default=str(VAR_DIR / "media"))
MEDIA_URL = "/media-not-served/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}


def logging_config(fmt: str, level: str) -> dict:
    """Stdlib logging rendered by structlog: `json` (one object per line, for log
    collectors) or `console`; both carry the conversation, turn, agent and workflow ids
    bound in structlog's contextvars (chat.turns.runner, orchestrator.sdk.attempt, workflow_steps)."""
    import structlog

    renderer = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    renderer,
                ],
                "foreign_pre_chain": [
                    structlog.contextvars.merge_contextvars,
                    structlog.stdlib.add_log_level,
                    structlog.stdlib.add_logger_name,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.processors.format_exc_info,
                ],
            }
        },
        "filters": {"layer_drops": {"()": "superorch_site.layer_watch.OverCapacityFilter"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Its "over capacity" line (a dropped frame) is counted and re-logged at WARNING.
            "channels_redis.core": {"level": "INFO", "filters": ["layer_drops"]},
            "openai.agents": {"level": "WARNING"},
            "httpx": {"level": "WARNING"},
            "httpx2": {"level": "WARNING"},
            "daphne": {"level": "WARNING"},
        },
    }


# Email (alert notifications): EMAIL_URL like smtp+tls://user:password@smtp.example.com:587;
# by default messages are printed to the console.
_email = env.email_url("EMAIL_URL", default="consolemail://")
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email.get("EMAIL_HOST", "")
EMAIL_PORT = _email.get("EMAIL_PORT") or 25
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _email.get("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = _email.get("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env.str(
    "DEFAULT_FROM_EMAIL", default="Super Orchestrator <superorch@localhost>"
)

# `json` or `console`; empty: console, and json under production.py.
SUPERORCH_LOG_FORMAT = env.str("SUPERORCH_LOG_FORMAT", default="")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = logging_config(SUPERORCH_LOG_FORMAT or "console", LOG_LEVEL)

# HTTPS behind a TLS-terminating proxy (applied by production.py).
DJANGO_SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
DJANGO_SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)

# The dashboard's covering index carries extra columns on PostgreSQL; SQLite (the
# embedded default) ignores them, which is fine for its small data.
SILENCED_SYSTEM_CHECKS = ["models.W040"]

# --- Super Orchestrator -------------------------------------------------------
# Model providers: with neither set, every agent on provider "auto" uses the
# local offline model.
OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="")
SUPERORCH_DEFAULT_MODEL = env.str("SUPERORCH_DEFAULT_MODEL", default="gpt-4.1-mini")
# The local offline model's streaming pace: seconds between words (0 = as fast as
# possible), within a budget for the whole reply, so a long reply streams faster rather
# than longer (SUPERORCH_LOCAL_MODEL_REPLY_SECONDS; 0 = no budget).
SUPERORCH_LOCAL_MODEL_DELAY = env.float("SUPERORCH_LOCAL_MODEL_DELAY", default=0.03)
SUPERORCH_LOCAL_MODEL_REPLY_SECONDS = env.float("SUPERORCH_LOCAL_MODEL_REPLY_SECONDS", default=2.0)
# Knowledge search ranks sections on words and, with the MiniLM weights, on meaning.
# Embedding an agent's sections takes seconds (once per process and article version):
# "background" ranks on words until they are ready, "inline" waits, "off" never embeds.
SUPERORCH_KNOWLEDGE_EMBEDDINGS = env.str("SUPERORCH_KNOWLEDGE_EMBEDDINGS", default="background")
if SUPERORCH_KNOWLEDGE_EMBEDDINGS not in ("background", "inline", "off"):
    raise ImproperlyConfigured(
        "SUPERORCH_KNOWLEDGE_EMBEDDINGS must be 'background', 'inline' or 'off'."
    )
# After a registry change the router retrains on a background thread and the previous one
# answers meanwhile ("background"), or turns wait for it ("inline"; the tests use this).
SUPERORCH_ROUTER_RETRAIN = env.str("SUPERORCH_ROUTER_RETRAIN", default="background")
if SUPERORCH_ROUTER_RETRAIN not in ("background", "inline"):
    raise ImproperlyConfigured("SUPERORCH_ROUTER_RETRAIN must be 'background' or 'inline'.")
# Trained routers are saved here (signed with SECRET_KEY), so a starting process loads
# the registry's router instead of training it again; empty: keep them in memory only.
SUPERORCH_ROUTER_CACHE_DIR = env.str("SUPERORCH_ROUTER_CACHE_DIR", default=str(VAR_DIR / "routers"))
# Guardrails (docs/guardrails.md): the offline input classifier in front of every turn,
# the model's own check when the agent that starts the turn has a real model (never on
# the local offline model), and the screen that
# keeps secrets, instructions and other people's e-mail addresses out of replies.
SUPERORCH_GUARDRAIL_INPUT = env.bool("SUPERORCH_GUARDRAIL_INPUT", default=True)
SUPERORCH_GUARDRAIL_LLM = env.bool("SUPERORCH_GUARDRAIL_LLM", default=True)
SUPERORCH_GUARDRAIL_OUTPUT = env.bool("SUPERORCH_GUARDRAIL_OUTPUT", default=True)
# The trained input classifier is saved here (signed with SECRET_KEY), as routers are.
SUPERORCH_GUARDRAIL_CACHE_DIR = env.str(
    "SUPERORCH_GUARDRAIL_CACHE_DIR", default=str(VAR_DIR / "guardrails")
)
# Threads per process for numpy/scipy (the router); more only contend on small matrices.
SUPERORCH_NUMERIC_THREADS = env.int("SUPERORCH_NUMERIC_THREADS", default=1)
# Seconds a chat turn waits for a workflow it started; after that the answer is posted to
# the conversation when the workflow finishes. Keep it below SUPERORCH_TURN_TIMEOUT.
SUPERORCH_WORKFLOW_WAIT = env.float("SUPERORCH_WORKFLOW_WAIT", default=90.0)
# Recovery from model failures: extra attempts on the same agent (with this backoff in
# seconds, doubled each time) before its alternative and then the fallback agent answer.
SUPERORCH_MODEL_RETRIES = env.int("SUPERORCH_MODEL_RETRIES", default=1)
SUPERORCH_MODEL_RETRY_BACKOFF = env.float("SUPERORCH_MODEL_RETRY_BACKOFF", default=1.0)
# An agent's circuit breaker opens after this many model failures in a row, and lets a
# probe through after this many seconds.
SUPERORCH_BREAKER_FAILURES = env.int("SUPERORCH_BREAKER_FAILURES", default=3)
SUPERORCH_BREAKER_COOLDOWN = env.float("SUPERORCH_BREAKER_COOLDOWN", default=30.0)
# A message that could not be answered because no model was reachable is tried again
# after these many seconds (then the last, repeatedly), and at once when the user writes.
SUPERORCH_REQUEUE_DELAYS = [
    float(x) for x in env.list("SUPERORCH_REQUEUE_DELAYS", default=["15", "30", "60", "120", "300"])
]
# Alert rules are evaluated at most this often (seconds) per process, after turns and
# on the dashboard; `manage.py check_alerts` evaluates them at once.
SUPERORCH_ALERT_INTERVAL = env.float("SUPERORCH_ALERT_INTERVAL", default=30.0)
# The dashboard's run rollups are brought up to date at most this often (seconds) per
# process, after turns, on a thread; Celery beat and `manage.py rollup_runs` do it too.
SUPERORCH_ROLLUP_INTERVAL = env.float("SUPERORCH_ROLLUP_INTERVAL", default=60.0)
# /metrics (Prometheus): a bearer token, and/or the addresses allowed without one.
SUPERORCH_METRICS_TOKEN = env.str("SUPERORCH_METRICS_TOKEN", default="")
# Empty unless set (token only); local.py and test.py allow loopback. Behind a proxy on
# the same host every visitor looks like 127.0.0.1, so production must not default to it.
SUPERORCH_METRICS_ALLOW = [
    ipaddress.ip_network(net, strict=False)
    for net in env.list("SUPERORCH_METRICS_ALLOW", default=[])
]
LOOPBACK_NETWORKS = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128")]
# Several server processes on a host share their metrics through files in this directory
# (empty, wiped at start; prometheus-client itself reads the same variable): docs/monitoring.md.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
# Actions (docs/actions.md) may only call these hosts: "host" (the scheme's usual port) or
# "host:port"; https:// unless the host is this machine. Empty: no action can be called.
SUPERORCH_ACTION_HOSTS = env.list("SUPERORCH_ACTION_HOSTS", default=[])
# How long an action waits for its approval (seconds): the user's yes or no, and staff's.
# Past it the approval expires and nothing is done (docs/actions.md, "Approvals").
SUPERORCH_APPROVAL_TTL_USER = env.int("SUPERORCH_APPROVAL_TTL_USER", default=3600)
SUPERORCH_APPROVAL_TTL_STAFF = env.int("SUPERORCH_APPROVAL_TTL_STAFF", default=86400)
# Staff roles (chat/roles.py, docs/security.md): the role of a member of staff in none of
# the role groups (viewer, support, supervisor or admin), and the largest amount a Support
# member may approve (Supervisors and Admins approve any).
SUPERORCH_DEFAULT_STAFF_ROLE = env.str("SUPERORCH_DEFAULT_STAFF_ROLE", default="support")
SUPERORCH_SUPPORT_APPROVAL_LIMIT = env.str("SUPERORCH_SUPPORT_APPROVAL_LIMIT", default="500")
# Model calls per turn before the turn is stopped (SDK max_turns).
SUPERORCH_MAX_MODEL_CALLS = env.int("SUPERORCH_MAX_MODEL_CALLS", default=10)
# A turn that runs longer than this (seconds) is stopped and reported as failed.
SUPERORCH_TURN_TIMEOUT = env.float("SUPERORCH_TURN_TIMEOUT", default=120.0)
# Seconds of model silence a turn may spend in all, across its attempts (retries, the
# alternative, the fallback): each attempt's silence limit is what is left (0: no budget).
SUPERORCH_TURN_SILENCE_BUDGET = env.float("SUPERORCH_TURN_SILENCE_BUDGET", default=45.0)
# Seconds without output after which a turn tells the user it is still working
# (`turn.progress`), and again after each as long; 0: never.
SUPERORCH_STILL_WORKING_AFTER = env.float("SUPERORCH_STILL_WORKING_AFTER", default=5.0)
# A conversation's turn lease (seconds), renewed every third of it while a turn runs; a
# crashed server's lease expires and another process takes the conversation over.
SUPERORCH_TURN_LEASE = env.float("SUPERORCH_TURN_LEASE", default=15.0)
# Seconds between two sweeps for conversations nobody answers (a queued message now due,
# a turn whose process died): a timer in each web process (inline runner) and Celery beat
# (chat.answer_pending_sweep, below); 0 turns the web timer off.
SUPERORCH_PENDING_SWEEP_INTERVAL = env.float("SUPERORCH_PENDING_SWEEP_INTERVAL", default=10.0)
# Where chat turns run: "inline" (in the web process that took the message; the default,
# see docs/benchmarks.md) or "celery" (on the Celery workers; needs a broker and the
# Redis channel layer, so their frames reach the sockets). Eager Celery runs them inline.
SUPERORCH_TURN_RUNNER = env.str("SUPERORCH_TURN_RUNNER", default="inline")
# Conversations a web process answers at once (inline runner): at most this many (0: no
# limit), fewer while its event loop lags more than the target (seconds); the rest wait,
# first come first served (chat/turns/slots.py, docs/benchmarks.md: concurrency).
SUPERORCH_MAX_ACTIVE_TURNS = env.int("SUPERORCH_MAX_ACTIVE_TURNS", default=100)
SUPERORCH_TURN_LAG_TARGET = env.float("SUPERORCH_TURN_LAG_TARGET", default=0.01)
# People in the loop (docs/people.md): a member of staff counts as online for this many
# seconds after they were last seen; a conversation is handed to a person after this many
# turns in a row ended in error (0: never), or this many thumbs-down (0: never).
SUPERORCH_STAFF_ONLINE_SECONDS = env.int("SUPERORCH_STAFF_ONLINE_SECONDS", default=300)
SUPERORCH_ESCALATE_AFTER_ERRORS = env.int("SUPERORCH_ESCALATE_AFTER_ERRORS", default=3)
SUPERORCH_ESCALATE_AFTER_THUMBS_DOWN = env.int("SUPERORCH_ESCALATE_AFTER_THUMBS_DOWN", default=2)
# A conversation that starts waiting for a person is also told to these addresses and
# POSTed, signed with the secret (orchestrator.alerts.webhook_post), to this URL, from a
# Celery task once committed (chat/staff_notify.py). Empty (the default): off.
SUPERORCH_STAFF_NOTIFY_EMAILS = env.list("SUPERORCH_STAFF_NOTIFY_EMAILS", default=[])
SUPERORCH_STAFF_NOTIFY_WEBHOOK_URL = env.str("SUPERORCH_STAFF_NOTIFY_WEBHOOK_URL", default="")
SUPERORCH_STAFF_NOTIFY_WEBHOOK_SECRET = env.str("SUPERORCH_STAFF_NOTIFY_WEBHOOK_SECRET", default="")
# Where this app is served (scheme://host[:port], no path), for links in emails and
# webhooks; empty: the links are paths (/staff/c/<uuid>/).
SUPERORCH_PUBLIC_URL = env.str("SUPERORCH_PUBLIC_URL", default="").rstrip("/")
# Messages of the conversation given to the model as input.
SUPERORCH_MODEL_INPUT_MESSAGES = env.int("SUPERORCH_MODEL_INPUT_MESSAGES", default=40)
# Messages sent in session.ready.
SUPERORCH_HISTORY_LIMIT = env.int("SUPERORCH_HISTORY_LIMIT", default=50)
# Largest WebSocket frame accepted, in bytes; longest user message, in characters.
SUPERORCH_MAX_FRAME_BYTES = env.int("SUPERORCH_MAX_FRAME_BYTES", default=16384)
SUPERORCH_MAX_MESSAGE_CHARS = env.int("SUPERORCH_MAX_MESSAGE_CHARS", default=4000)
# Messages a conversation may send (limits' syntax), and how many refusals close the socket.
SUPERORCH_RATE_LIMIT = env.str("SUPERORCH_RATE_LIMIT", default="20/minute")
SUPERORCH_RATE_LIMIT_CLOSE_AFTER = env.int("SUPERORCH_RATE_LIMIT_CLOSE_AFTER", default=5)
# Per client (its address; chat/clients.py, docs/security.md): sockets open at once in
# one process, new conversations and messages (all its conversations) per period.
SUPERORCH_CLIENT_MAX_SOCKETS = env.int("SUPERORCH_CLIENT_MAX_SOCKETS", default=20)
SUPERORCH_CLIENT_NEW_CONVERSATION_RATE = env.str(
    "SUPERORCH_CLIENT_NEW_CONVERSATION_RATE", default="10/minute"
)
SUPERORCH_CLIENT_MESSAGE_RATE = env.str("SUPERORCH_CLIENT_MESSAGE_RATE", default="60/minute")
# Attachments a conversation may upload (limits' syntax; docs/attachments.md). The kinds
# of file and the largest size are each site's own settings (Admin → Sites).
SUPERORCH_ATTACHMENT_RATE = env.str("SUPERORCH_ATTACHMENT_RATE", default="10/10minutes")
# Staff API requests per member of staff (token or session; docs/staff-api.md).
SUPERORCH_STAFF_API_RATE = env.str("SUPERORCH_STAFF_API_RATE", default="600/minute")
# Proxies whose X-Forwarded-For names the client (CIDRs; none by default: the peer
# address is the client). Set it to your load balancer's addresses behind one.
SUPERORCH_TRUSTED_PROXIES = [
    ipaddress.ip_network(net, strict=False)
    for net in env.list("SUPERORCH_TRUSTED_PROXIES", default=[])
]
# Seconds a socket may stay open without starting a session (then error bad_frame, close 4400).
SUPERORCH_SESSION_START_TIMEOUT = env.float("SUPERORCH_SESSION_START_TIMEOUT", default=15.0)
# Origins (scheme://host[:port]) of this app's own pages, allowed to open the chat socket
# besides the sites' allowed origins. Empty unless set: local.py serves loopback on make
# run's port, production.py https:// on each DJANGO_ALLOWED_HOSTS name.
SUPERORCH_APP_ORIGINS = env.list("SUPERORCH_APP_ORIGINS", default=[])


def https_origins(hosts: list[str]) -> list[str]:
    """The https:// origins of ALLOWED_HOSTS names (".example.com": it and its subdomains;
    "*" gives none: set SUPERORCH_APP_ORIGINS then)."""
    origins = []
    for host in hosts:
        if host.startswith("."):
            origins += [f"https://{host[1:]}", f"https://*{host}"]
        elif host and host != "*":
            origins.append(f"https://{host}")
    return origins


# --- The server (daphne) -------------------------------------------------------
# What `manage.py runserver` (make run, the browser tests) gives daphne; production passes
# the same as daphne's or uvicorn's flags (docs/operations.md). Above the frame limit, so a
# frame between the two is answered `too_large` instead of dropping the connection.
SUPERORCH_SERVER_MAX_MESSAGE_BYTES = env.int(
    "SUPERORCH_SERVER_MAX_MESSAGE_BYTES", default=4 * 1024 * 1024
)
# Seconds an HTTP connection may sit idle (slow headers, keep-alive), and an HTTP response
# may take, before the server drops it.
SUPERORCH_SERVER_IDLE_TIMEOUT = env.int("SUPERORCH_SERVER_IDLE_TIMEOUT", default=30)
SUPERORCH_SERVER_HTTP_TIMEOUT = env.int("SUPERORCH_SERVER_HTTP_TIMEOUT", default=120)
# Seconds for the app to accept a WebSocket (the handshake itself: 5); a ping every
# this many seconds, and a socket that does not answer one in time is closed.
SUPERORCH_SERVER_WEBSOCKET_CONNECT_TIMEOUT = env.int(
    "SUPERORCH_SERVER_WEBSOCKET_CONNECT_TIMEOUT", default=10
)
SUPERORCH_SERVER_PING_INTERVAL = env.int("SUPERORCH_SERVER_PING_INTERVAL", default=20)
SUPERORCH_SERVER_PING_TIMEOUT = env.int("SUPERORCH_SERVER_PING_TIMEOUT", default=30)
# daphne's own runserver reads these two.
DAPHNE_WEBSOCKET_MAX_MESSAGE_SIZE = SUPERORCH_SERVER_MAX_MESSAGE_BYTES
DAPHNE_WEBSOCKET_MAX_FRAME_SIZE = SUPERORCH_SERVER_MAX_MESSAGE_BYTES
# Storage for rate limits: memory:// in one process, redis://... across processes.
SUPERORCH_RATE_LIMIT_STORAGE = env.str(
    "SUPERORCH_RATE_LIMIT_STORAGE",
    default=("async+" + REDIS_URL) if REDIS_URL else "async+memory://",
)

# Celery beat (`celery -A superorch_site beat`, or a worker with -B): the periodic tasks.
CELERY_BEAT_SCHEDULE = {
    "answer-pending-sweep": {
        "task": "chat.answer_pending_sweep",
        "schedule": SUPERORCH_PENDING_SWEEP_INTERVAL or 10.0,
    },
    "check-alerts": {"task": "orchestrator.check_alerts", "schedule": 60.0},
    # The dashboard's run rollups (docs/monitoring.md): the minutes that settled.
    "rollup-runs": {"task": "orchestrator.rollup_runs", "schedule": 60.0},
    # Retention (docs/privacy.md): conversations past their site's retention, once a day.
    "purge-expired": {"task": "chat.purge_expired", "schedule": 24 * 60 * 60.0},
}
