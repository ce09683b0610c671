"""Integration settings: the test settings on real PostgreSQL and Redis.

DATABASE_URL defaults to the local PostgreSQL database `test`, REDIS_URL to the
local Redis; .ci/run starts both if they are not running.
"""

from .base import env, redis_layer_host
from .test import *  # noqa: F403

DATABASES = {
    "default": env.db_url_config(
        env.str("INTEGRATION_DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/test")
    )
}
REDIS_URL = env.str("INTEGRATION_REDIS_URL", default="redis://127.0.0.1:6379/9")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [redis_layer_host(REDIS_URL)], "capacity": 1500, "expiry": 30},
    }
}
SUPERORCH_RATE_LIMIT_STORAGE = "async+" + REDIS_URL

# The workflow tests start real Celery workers with these (tests/integration/test_workflows_celery.py):
# the broker, and the loopback model server the test runs.
INTEGRATION_CELERY_BROKER_URL = env.str(
    "INTEGRATION_CELERY_BROKER_URL", default="amqp://guest:guest@127.0.0.1:5672//"
)
OPENAI_BASE_URL = env.str("INTEGRATION_OPENAI_BASE_URL", default="")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
