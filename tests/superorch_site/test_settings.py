"""The settings modules: base is safe, production refuses to start without its secrets
and passes check --deploy, and the test and integration settings ignore the shell."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# What a shell on the project's machines may export (the real services run there).
EXPORTED = {
    "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
    "OPENAI_API_KEY": "sk-from-the-shell",
    "OPENAI_BASE_URL": "http://127.0.0.1:11434/v1",
    "SUPERORCH_RATE_LIMIT_STORAGE": "async+redis://127.0.0.1:6379/0",
    "SUPERORCH_TURN_RUNNER": "celery",
    "DJANGO_SECRET_KEY": "from-the-shell",
    "PROMETHEUS_MULTIPROC_DIR": "/tmp/nowhere",
}
PRODUCTION = {
    "DJANGO_SECRET_KEY": "x" * 20 + "a-long-random-production-secret-0123456789",
    "DJANGO_ALLOWED_HOSTS": "chat.example.com",
    "DATABASE_URL": "postgres://user@127.0.0.1:5432/test",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "SUPERORCH_FIELD_KEYS": "6f3AvnK1XUv3D4X9G2cWbWDpfx3i3nb5ya3ueWf1c1o=",
}
# Printed by `settings_of`: what the tests look at.
PROBE = """
import json, os, django
from django.conf import settings as s
from superorch_site.settings.environment import LIBRARY_VARIABLES
django.setup()
db = s.DATABASES["default"]
print(json.dumps({
    "DEBUG": s.DEBUG,
    "CELERY_TASK_ALWAYS_EAGER": s.CELERY_TASK_ALWAYS_EAGER,
    "CELERY_BROKER_URL": s.CELERY_BROKER_URL,
    "layer": s.CHANNEL_LAYERS["default"]["BACKEND"],
    "REDIS_URL": s.REDIS_URL,
    "SUPERORCH_RATE_LIMIT_STORAGE": s.SUPERORCH_RATE_LIMIT_STORAGE,
    "OPENAI_API_KEY": s.OPENAI_API_KEY,
    "OPENAI_BASE_URL": s.OPENAI_BASE_URL,
    "SUPERORCH_TURN_RUNNER": s.SUPERORCH_TURN_RUNNER,
    "PROMETHEUS_MULTIPROC_DIR": s.PROMETHEUS_MULTIPROC_DIR,
    "SECRET_KEY": s.SECRET_KEY,
    "engine": db["ENGINE"],
    "name": str(db["NAME"]),
    "test_name": db.get("TEST", {}).get("NAME"),
    "library_env": [k for k in LIBRARY_VARIABLES if k in os.environ],
}))
"""


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any variable the settings read, plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL", "CELERY_", "OPENAI_"))
        and not k.startswith(("SUPERORCH_", "INTEGRATION_", "PROMETHEUS_"))
    }
    env.update(extra)
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def settings_of(module: str, **exported: str) -> dict:
    done = run(["-c", PROBE], clean_env(DJANGO_SETTINGS_MODULE=module, **exported))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def manage(*args: str, **exported: str) -> subprocess.CompletedProcess:
    return run(["manage.py", *args], clean_env(**exported))


def test_test_settings_ignore_what_the_shell_exports():
    seen = settings_of("superorch_site.settings.test", **EXPORTED)
    assert seen["CELERY_TASK_ALWAYS_EAGER"] is True and seen["CELERY_BROKER_URL"] == ""
    assert seen["layer"] == "chat.layers.InMemoryChannelLayer" and seen["REDIS_URL"] == ""
    assert seen["SUPERORCH_RATE_LIMIT_STORAGE"] == "async+memory://"
    assert seen["OPENAI_API_KEY"] == "" and seen["OPENAI_BASE_URL"] == ""
    assert seen["SUPERORCH_TURN_RUNNER"] == "inline"
    assert seen["PROMETHEUS_MULTIPROC_DIR"] == ""
    assert seen["library_env"] == []  # the OpenAI clients and prometheus-client see none
    assert seen["SECRET_KEY"] != EXPORTED["DJANGO_SECRET_KEY"]
    assert seen["engine"] == "django.db.backends.sqlite3"
    assert seen["test_name"].endswith("var/test.sqlite3")


def test_integration_settings_take_only_integration_variables():
    seen = settings_of(
        "superorch_site.settings.integration",
        **EXPORTED,
        INTEGRATION_REDIS_URL="redis://127.0.0.1:6379/11",
        INTEGRATION_DATABASE_URL="postgres://postgres@127.0.0.1:5432/elsewhere",
    )
    assert seen["REDIS_URL"] == "redis://127.0.0.1:6379/11"
    assert seen["layer"] == "channels_redis.core.RedisChannelLayer"
    assert seen["SUPERORCH_RATE_LIMIT_STORAGE"] == "async+redis://127.0.0.1:6379/11"
    assert seen["engine"] == "django.db.backends.postgresql" and seen["name"] == "elsewhere"
    assert seen["CELERY_TASK_ALWAYS_EAGER"] is True and seen["CELERY_BROKER_URL"] == ""
    assert seen["OPENAI_API_KEY"] == "" and seen["SUPERORCH_TURN_RUNNER"] == "inline"
    workers = settings_of("superorch_site.settings.integration", INTEGRATION_CELERY_EAGER="false")
    assert workers["CELERY_TASK_ALWAYS_EAGER"] is False
    assert workers["CELERY_BROKER_URL"].startswith("amqp://")


def test_base_is_safe_and_creates_nothing_on_import():
    code = (
        "import json, pathlib\n"
        "def refuse(*a, **k): raise AssertionError('base created a directory')\n"
        "pathlib.Path.mkdir = refuse\n"
        "from superorch_site.settings import base\n"
        "print(json.dumps([base.DEBUG, base.SECRET_KEY, base.ALLOWED_HOSTS,"
        " base.CELERY_TASK_ALWAYS_EAGER, base.CHANNEL_LAYERS['default']['BACKEND']]))\n"
    )
    done = run(["-c", code], clean_env())
    assert done.returncode == 0, done.stderr
    debug, secret, hosts, eager, layer = json.loads(done.stdout)
    assert debug is False and secret == "" and hosts == []
    assert eager is True and layer == "chat.layers.InMemoryChannelLayer"


def test_local_settings_serve_the_embedded_defaults():
    seen = settings_of("superorch_site.settings.local")
    assert seen["DEBUG"] is True and seen["SECRET_KEY"].startswith("django-insecure-local-only")
    assert seen["CELERY_TASK_ALWAYS_EAGER"] is True
    assert seen["layer"] == "chat.layers.InMemoryChannelLayer"
    assert seen["engine"] == "django.db.backends.sqlite3"
    assert seen["name"].endswith("var/db.sqlite3")


def test_manage_py_check_is_clean_under_local_settings():
    done = manage("check")  # manage.py's default settings module: local
    assert done.returncode == 0, done.stderr
    assert "no issues" in done.stdout


@pytest.mark.parametrize(
    "missing", ["DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "SUPERORCH_FIELD_KEYS"]
)
def test_production_refuses_to_start_without_its_secrets(missing):
    exported = {k: v for k, v in PRODUCTION.items() if k != missing}
    done = manage("check", DJANGO_SETTINGS_MODULE="superorch_site.settings.production", **exported)
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr and missing in done.stderr


def test_check_deploy_is_clean_under_production_settings():
    done = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_SETTINGS_MODULE="superorch_site.settings.production",
        **PRODUCTION,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert "no issues" in done.stdout


def test_production_reads_what_base_read():
    seen = settings_of("superorch_site.settings.production", **PRODUCTION, CELERY_BROKER_URL="")
    assert seen["DEBUG"] is False and seen["CELERY_TASK_ALWAYS_EAGER"] is False
    assert seen["CELERY_BROKER_URL"] == PRODUCTION["REDIS_URL"]
    assert seen["layer"] == "channels_redis.core.RedisChannelLayer"
    assert seen["SUPERORCH_RATE_LIMIT_STORAGE"] == "async+" + PRODUCTION["REDIS_URL"]


def test_serve_settings_are_production_over_plain_http_on_this_machine():
    """`make serve`: the production layout (PostgreSQL, Redis, turns on the workers, DEBUG
    off) with loopback defaults, the app's own http:// origins and WhiteNoise."""
    probe = PROBE.replace(
        '"library_env"',
        '"origins": s.SUPERORCH_APP_ORIGINS, "whitenoise": "whitenoise.middleware.WhiteNoiseMiddleware"'
        ' in s.MIDDLEWARE, "secure_cookie": s.SESSION_COOKIE_SECURE, "ssl_redirect": s.SECURE_SSL_REDIRECT,'
        ' "demo": "demo" in s.INSTALLED_APPS, "library_env"',
    )
    env = clean_env(
        DJANGO_SETTINGS_MODULE="superorch_site.settings.serve",
        DJANGO_SECRET_KEY=PRODUCTION["DJANGO_SECRET_KEY"],
        SUPERORCH_FIELD_KEYS=PRODUCTION["SUPERORCH_FIELD_KEYS"],
        SERVE_PORT="8300",
    )
    done = run(["-c", probe], env)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["DEBUG"] is False and seen["CELERY_TASK_ALWAYS_EAGER"] is False
    assert seen["engine"] == "django.db.backends.postgresql" and seen["name"] == "superorch"
    assert seen["layer"] == "channels_redis.core.RedisChannelLayer"
    assert seen["SUPERORCH_TURN_RUNNER"] == "celery"
    assert seen["origins"] == ["http://127.0.0.1:8300", "http://localhost:8300"]
    assert seen["whitenoise"] and seen["demo"]
    assert seen["secure_cookie"] is False and seen["ssl_redirect"] is False
