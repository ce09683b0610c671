"""Production settings: PostgreSQL, Redis channel layer, a real Celery broker.

Refuses to start without its secrets. `manage.py check --deploy` is clean here.
"""

import ipaddress

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import env, logging_config, redis_layer_host

DEBUG = False
# One JSON object per log line, with conversation, turn and agent ids.
SUPERORCH_LOG_FORMAT = env.str("SUPERORCH_LOG_FORMAT", default="json")
LOGGING = logging_config(SUPERORCH_LOG_FORMAT, env.str("LOG_LEVEL", default="INFO"))


def _required(name: str) -> str:
    value = env.str(name, default="")
    if not value:
        raise ImproperlyConfigured(f"Production settings need the environment variable {name}.")
    return value


SECRET_KEY = _required("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[]) or _required("DJANGO_ALLOWED_HOSTS")
DATABASES = {"default": env.db_url_config(_required("DATABASE_URL"))}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DJANGO_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

REDIS_URL = _required("REDIS_URL")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [redis_layer_host(REDIS_URL)], "capacity": 1500, "expiry": 30},
    }
}
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or REDIS_URL
CELERY_TASK_ALWAYS_EAGER = False
# Behind a proxy on the same host every visitor looks like 127.0.0.1: /metrics needs the
# token unless an allow-list is set explicitly.
SUPERORCH_METRICS_ALLOW = [
    ipaddress.ip_network(net, strict=False)
    for net in env.list("SUPERORCH_METRICS_ALLOW", default=[])
]
SUPERORCH_RATE_LIMIT_STORAGE = env.str("SUPERORCH_RATE_LIMIT_STORAGE", default="async+" + REDIS_URL)

# HTTPS behind a TLS-terminating proxy.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}
