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
