"""Test settings: embedded defaults, fast, no network."""

from .base import *  # noqa: F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SUPERORCH_LOCAL_MODEL_DELAY = 0.0
SUPERORCH_MODEL_RETRY_BACKOFF = 0.01
SUPERORCH_ALERT_INTERVAL = 0  # tests evaluate alert rules themselves
# A test that edits the registry routes with the edited one.
SUPERORCH_ROUTER_RETRAIN = "inline"
# Generous so protocol tests are not throttled unless they ask to be.
SUPERORCH_RATE_LIMIT = "1000/minute"
OPENAI_API_KEY = ""
OPENAI_BASE_URL = ""
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
