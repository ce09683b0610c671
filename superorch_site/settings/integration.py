"""Integration settings: the test settings on real PostgreSQL and Redis.

Reads only INTEGRATION_* variables (through environment.integration_env); like the
test settings, nothing else the shell exports changes them. The database defaults
to the local PostgreSQL database `test`, Redis to the local server's db 9; .ci/run
starts both if they are not running.
"""

from .environment import hermetic, integration_env

hermetic()  # before base is imported (test.py does it too)

from .base import channel_layers, database_config  # noqa: E402
from .test import *  # noqa: E402, F403

DATABASES = {
    "default": database_config(
        integration_env.str(
            "INTEGRATION_DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/test"
        )
    )
}
REDIS_URL = integration_env.str("INTEGRATION_REDIS_URL", default="redis://127.0.0.1:6379/9")
CHANNEL_LAYERS = channel_layers(REDIS_URL)
SUPERORCH_RATE_LIMIT_STORAGE = "async+" + REDIS_URL

# The workflow and turn tests start real Celery workers (tests/support/celery_workers.py)
# on this broker, with INTEGRATION_CELERY_EAGER=false so the tasks they queue go to the
# broker too; the test process itself stays eager until a test switches it.
INTEGRATION_CELERY_BROKER_URL = integration_env.str(
    "INTEGRATION_CELERY_BROKER_URL", default="amqp://guest:guest@127.0.0.1:5672//"
)
CELERY_TASK_ALWAYS_EAGER = integration_env.bool("INTEGRATION_CELERY_EAGER", default=True)
CELERY_BROKER_URL = "" if CELERY_TASK_ALWAYS_EAGER else INTEGRATION_CELERY_BROKER_URL
# Where chat turns run, for the workers a turn test starts (hermetic: not SUPERORCH_*).
SUPERORCH_TURN_RUNNER = integration_env.str("INTEGRATION_TURN_RUNNER", default="inline")
# The loopback model server the test runs, for the workers.
OPENAI_BASE_URL = integration_env.str("INTEGRATION_OPENAI_BASE_URL", default="")
# The hosts actions may call, for those workers: a test's demo backend on a free port
# (the test settings allow only the fixed ones; SUPERORCH_* is not read here).
SUPERORCH_ACTION_HOSTS = integration_env.list(
    "INTEGRATION_ACTION_HOSTS",
    default=SUPERORCH_ACTION_HOSTS,  # noqa: F405
)
