"""Celery app; configuration comes from Django settings (namespace CELERY)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "superorch_site.settings.base")

app = Celery("superorch_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
