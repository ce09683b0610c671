from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat"

    def ready(self) -> None:
        from django.core import checks

        from . import receivers  # noqa: F401
        from .checks import turn_runner_check

        checks.register(turn_runner_check)
