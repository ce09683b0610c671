"""`manage.py runserver`: daphne's development server (what `make run` and the browser tests
start) with the project's server settings (superorch_site.server). Its own flags still win:
--http_timeout, --websocket_handshake_timeout, --websocket-max-message-size,
--websocket-max-frame-size."""

from __future__ import annotations

import functools
from typing import Any

from daphne.management.commands.runserver import Command as DaphneCommand
from daphne.management.commands.runserver import get_default_application
from django.conf import settings

from superorch_site.server import Server, StaticFilesHandler, daphne_options


class Command(DaphneCommand):
    def handle(self, *args: Any, **options: Any) -> None:
        defaults = daphne_options()
        if options.get("http_timeout") is None:  # daphne's command passes its flag's value
            options["http_timeout"] = defaults["http_timeout"]
        self.server_cls = functools.partial(Server, **defaults)
        super().handle(*args, **options)

    def get_application(self, options: dict[str, Any]) -> Any:
        insecure = options.get("insecure_serving", False)
        if options.get("use_static_handler", True) and (settings.DEBUG or insecure):
            return StaticFilesHandler(get_default_application())
        return get_default_application()
