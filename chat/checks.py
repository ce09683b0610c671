"""System checks of the chat's settings (`manage.py check`)."""

from django.conf import settings
from django.core.checks import Error


def turn_runner_check(app_configs, **kwargs) -> list[Error]:
    if settings.SUPERORCH_MAX_ACTIVE_TURNS < 0:
        return [
            Error(
                f"SUPERORCH_MAX_ACTIVE_TURNS is {settings.SUPERORCH_MAX_ACTIVE_TURNS}; it must "
                "be a number of turns (0: no limit).",
                id="chat.E003",
            )
        ]
    runner = settings.SUPERORCH_TURN_RUNNER
    if runner not in ("inline", "celery"):
        return [
            Error(
                f"SUPERORCH_TURN_RUNNER is {runner!r}; it must be 'inline' or 'celery'.",
                id="chat.E001",
            )
        ]
    layer = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "")
    if runner == "celery" and settings.CELERY_BROKER_URL and "InMemory" in layer:
        return [
            Error(
                "Chat turns run on Celery workers (SUPERORCH_TURN_RUNNER=celery), but the "
                "channel layer is in memory: the workers' replies would never reach the "
                "sockets.",
                hint="Set REDIS_URL so the web servers and the workers share the Redis layer.",
                id="chat.E002",
            )
        ]
    return []
