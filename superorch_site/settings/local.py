"""Local development settings: what `make run` and manage.py use by default.

DEBUG on, a development-only secret key, SQLite in var/, the in-memory channel
layer, eager Celery and the local offline model, unless the environment (read once,
in base.py) says otherwise: DATABASE_URL, REDIS_URL, CELERY_BROKER_URL,
OPENAI_API_KEY... work here as they do in production.
"""

from .base import *  # noqa: F403
from .base import (
    INSTALLED_APPS,
    LOOPBACK_HOSTS,
    LOOPBACK_NETWORKS,
    SUPERORCH_ACTION_HOSTS,
    SUPERORCH_APP_ORIGINS,
    VAR_DIR,
)

DEBUG = True
# Only for this machine: production.py refuses to start without DJANGO_SECRET_KEY.
SECRET_KEY = SECRET_KEY or "django-insecure-local-only-superorch-never-use-in-production"  # noqa: F405
ALLOWED_HOSTS = ALLOWED_HOSTS or LOOPBACK_HOSTS  # noqa: F405
SUPERORCH_METRICS_ALLOW = SUPERORCH_METRICS_ALLOW or LOOPBACK_NETWORKS  # noqa: F405
# The chat socket accepts the app's pages on make run's default port (make run sets it for
# another PORT; the browser tests for theirs).
SUPERORCH_APP_ORIGINS = SUPERORCH_APP_ORIGINS or ["http://127.0.0.1:8000", "http://localhost:8000"]
# The demo backend's actions (make run serves it on PORT+1 and sets this for another PORT).
SUPERORCH_ACTION_HOSTS = SUPERORCH_ACTION_HOSTS or ["127.0.0.1:8001", "localhost:8001"]
# The example customer site of `make run` (demo_site, demo_host): not in production.
INSTALLED_APPS = [*INSTALLED_APPS, "demo"]

# The SQLite database and the router cache live in var/ (git-ignored).
VAR_DIR.mkdir(exist_ok=True)
