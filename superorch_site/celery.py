"""Celery app; configuration comes from Django settings (namespace CELERY).

Without DJANGO_SETTINGS_MODULE a worker (`celery -A superorch_site worker`) uses the
production settings, as daphne does (superorch_site/asgi.py): workers are only
needed with a real broker, and the local and test settings run tasks eagerly in
process. superorch_site/__init__.py imports this module, so the default applies to
any process that imports the project before choosing its settings; manage.py
(local) and pytest (test) choose theirs first.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "superorch_site.settings.production")

app = Celery("superorch_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
