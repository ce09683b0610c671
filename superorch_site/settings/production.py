"""Production settings: PostgreSQL, Redis channel layer, a real Celery broker.

Only overrides base.py, which read the environment; refuses to start without its
secrets. `manage.py check --deploy` is clean here (`make check-deploy`). Every
production process uses this module: daphne or uvicorn (superorch_site.asgi:application),
the Celery workers and `manage.py migrate` / `collectstatic` (docs/configuration.md).
"""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import (
    ALLOWED_HOSTS,
    CELERY_BROKER_URL,
    DATABASE_URL,
    DJANGO_CONN_MAX_AGE,
    DJANGO_SECURE_HSTS_SECONDS,
    DJANGO_SECURE_SSL_REDIRECT,
    LOG_LEVEL,
    REDIS_URL,
    SECRET_KEY,
    SUPERORCH_APP_ORIGINS,
    SUPERORCH_FIELD_KEYS,
    SUPERORCH_LOG_FORMAT,
    database_config,
    https_origins,
    logging_config,
)

_missing = [
    name
    for name, value in (
        ("DJANGO_SECRET_KEY", SECRET_KEY),
        ("DJANGO_ALLOWED_HOSTS", ALLOWED_HOSTS),
        ("DATABASE_URL", DATABASE_URL),
        ("REDIS_URL", REDIS_URL),
        # The stored texts' keys: never derived from DJANGO_SECRET_KEY here, so rotating
        # the secret key leaves every message readable (docs/privacy.md).
        ("SUPERORCH_FIELD_KEYS", SUPERORCH_FIELD_KEYS),
    )
    if not value
]
if _missing:
    raise ImproperlyConfigured(
        "Production settings need the environment variable(s) " + ", ".join(_missing) + "."
    )

DEBUG = False
# The chat socket accepts this app's own pages: https:// on each allowed host, unless set.
SUPERORCH_APP_ORIGINS = SUPERORCH_APP_ORIGINS or https_origins(ALLOWED_HOSTS)
# One JSON object per log line, with conversation, turn and agent ids.
LOGGING = logging_config(SUPERORCH_LOG_FORMAT or "json", LOG_LEVEL)

DATABASES = {"default": database_config(DATABASE_URL, conn_max_age=DJANGO_CONN_MAX_AGE)}
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# base.py already chose the Redis channel layer and rate-limit storage from REDIS_URL.
CELERY_BROKER_URL = CELERY_BROKER_URL or REDIS_URL
CELERY_TASK_ALWAYS_EAGER = False

# HTTPS behind a TLS-terminating proxy.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = DJANGO_SECURE_SSL_REDIRECT
SECURE_HSTS_SECONDS = DJANGO_SECURE_HSTS_SECONDS
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed names, with the chat client's ES module imports rewritten to them.
    "staticfiles": {"BACKEND": "superorch_site.storage.ModuleManifestStaticFilesStorage"},
}
