"""System checks of the chat's settings (`manage.py check`)."""

from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.checks import Error


def turn_runner_check(app_configs, **kwargs) -> list[Error]:
    errors = []
    if settings.SUPERORCH_MAX_ACTIVE_TURNS < 0:
        errors.append(
            Error(
                f"SUPERORCH_MAX_ACTIVE_TURNS is {settings.SUPERORCH_MAX_ACTIVE_TURNS}; it must "
                "be a number of turns (0: no limit).",
                id="chat.E003",
            )
        )
    if settings.SUPERORCH_TURN_LAG_TARGET <= 0:
        errors.append(
            Error(
                f"SUPERORCH_TURN_LAG_TARGET is {settings.SUPERORCH_TURN_LAG_TARGET}; it must be "
                "a number of seconds above 0 (the default is 0.01).",
                id="chat.E004",
            )
        )
    runner = settings.SUPERORCH_TURN_RUNNER
    layer = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "")
    if runner not in ("inline", "celery"):
        errors.append(
            Error(
                f"SUPERORCH_TURN_RUNNER is {runner!r}; it must be 'inline' or 'celery'.",
                id="chat.E001",
            )
        )
    elif runner == "celery" and settings.CELERY_BROKER_URL and "InMemory" in layer:
        errors.append(
            Error(
                "Chat turns run on Celery workers (SUPERORCH_TURN_RUNNER=celery), but the "
                "channel layer is in memory: the workers' replies would never reach the "
                "sockets.",
                hint="Set REDIS_URL so the web servers and the workers share the Redis layer.",
                id="chat.E002",
            )
        )
    return errors


def roles_check(app_configs, **kwargs) -> list[Error]:
    """The staff roles' settings (chat/roles.py)."""
    errors = []
    default = str(settings.SUPERORCH_DEFAULT_STAFF_ROLE).strip().lower()
    if default not in ("viewer", "support", "supervisor", "admin"):
        errors.append(
            Error(
                f"SUPERORCH_DEFAULT_STAFF_ROLE is {default!r}; it must be viewer, support, "
                "supervisor or admin.",
                id="chat.E005",
            )
        )
    try:
        limit = Decimal(str(settings.SUPERORCH_SUPPORT_APPROVAL_LIMIT))
    except InvalidOperation:
        limit = Decimal(-1)
    if not limit.is_finite() or limit < 0:
        errors.append(
            Error(
                f"SUPERORCH_SUPPORT_APPROVAL_LIMIT is {settings.SUPERORCH_SUPPORT_APPROVAL_LIMIT!r}; "
                "it must be an amount of 0 or more, like 500 or 99.50.",
                id="chat.E006",
            )
        )
    return errors
