from django.apps import AppConfig


class OrchestratorConfig(AppConfig):
    name = "orchestrator"
    verbose_name = "Orchestrator"

    def ready(self) -> None:
        from django.conf import settings
        from threadpoolctl import threadpool_limits

        from . import signals, tasks  # noqa: F401  (receivers; Celery tasks by name)

        # The router's matrices are small: extra BLAS threads only contend (training the
        # seeded team's router takes 0.6 s on one thread, 2-4 s on two). Processes, not
        # threads, are how this app uses more cores.
        threadpool_limits(limits=settings.SUPERORCH_NUMERIC_THREADS)
        _audit_registry()


def _audit_registry() -> None:
    """django-auditlog records every change of these, with its before and after and who
    made it (Admin → Auditlog → Log entries). Secrets' values never: only their names."""
    from auditlog.registry import auditlog

    from . import models as m

    auditlog.register(
        m.AgentProfile, m2m_fields={"actions", "knowledge_bases", "handoffs", "mcp_servers"}
    )
    for model in (m.RoutingSettings, m.KnowledgeArticle, m.Workflow, m.Action, m.AlertRule):
        auditlog.register(model)
    auditlog.register(m.McpServer, exclude_fields=["tools"])
    auditlog.register(m.ActionSecret, exclude_fields=["ciphertext"])
