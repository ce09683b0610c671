from django.apps import AppConfig
from django.core import checks

from .checks import roles_check, turn_runner_check


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"

    def ready(self) -> None:
        # Signal receivers and Celery tasks import models: they can only be imported once
        # apps are loaded (the tasks are registered here, queued by name elsewhere).
        from . import attachments, guardrails, receivers, tasks  # noqa: F401

        checks.register(turn_runner_check)
        checks.register(roles_check)
        guardrails.register()  # marked false positives and the sites' secrets
        _audit_registry()


def _audit_registry() -> None:
    """django-auditlog records changes of the sites and the team's settings (never the
    sites' identity secrets); conversations are not model changes to log (chat/audit.py
    records what staff do with them)."""
    from auditlog.registry import auditlog

    from . import models as m

    auditlog.register(m.Site, exclude_fields=["identity_secret"])
    for model in (m.CannedReply, m.OpeningHours, m.Holiday):
        auditlog.register(model)
