"""`make serve`: the production layout on one machine, over plain HTTP.

The production settings (PostgreSQL, the Redis channel layer and broker, chat turns on
Celery workers, DEBUG off, JSON logs, hashed static files), with what a machine without
a TLS proxy needs: cookies that are not Secure-only, no redirect to https, the app's own
http:// origins for the chat socket, and static files served by WhiteNoise. The Makefile
sets the rest (a generated secret key in var/, the port, the services' URLs); every
variable can be overridden from the environment (docs/operations.md). Behind a TLS
proxy, use superorch_site.settings.production itself.
"""

import os

_port = os.environ.get("SERVE_PORT", "8000")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/superorch")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("DJANGO_SECURE_HSTS_SECONDS", "0")
os.environ.setdefault("SUPERORCH_TURN_RUNNER", "celery")
os.environ.setdefault("SUPERORCH_APP_ORIGINS", f"http://127.0.0.1:{_port},http://localhost:{_port}")

from .production import *  # noqa: E402, F403
from .production import INSTALLED_APPS, MIDDLEWARE  # noqa: E402

# The example customer site and its backend (demo_site, demo_host), as on `make run`, so
# the seeded actions work here too: never in production.py.
INSTALLED_APPS = [*INSTALLED_APPS, "demo"]
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
# Static files from STATIC_ROOT (collectstatic), right after the security middleware.
MIDDLEWARE = [
    *MIDDLEWARE[: MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1],
    "whitenoise.middleware.WhiteNoiseMiddleware",
    *MIDDLEWARE[MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1 :],
]
