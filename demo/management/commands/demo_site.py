from django.core.management.base import BaseCommand

from chat.services import site_ensure_default
from demo.services import DEMO_WIDGET_SITE_KEY, demo_actions_point_at, site_ensure_demo_widget


class Command(BaseCommand):
    help = (
        f"Create the '{DEMO_WIDGET_SITE_KEY}' demo widget site that the example host page "
        "(demo_host) embeds, allowing the given origins, and the app's own 'demo' site if "
        "it is missing (idempotent)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--origin",
            action="append",
            default=[],
            help="An origin the demo widget site allows (repeatable), e.g. http://127.0.0.1:8001.",
        )
        parser.add_argument(
            "--backend",
            default="",
            help="The demo backend's address (demo_host's, e.g. http://127.0.0.1:8001): the "
            "seeded actions signed with the demo secret are pointed at it.",
        )

    def handle(self, *args, **options) -> None:
        site_ensure_default()
        site = site_ensure_demo_widget(origins=[o.rstrip("/").lower() for o in options["origin"]])
        if options["backend"]:
            moved = demo_actions_point_at(backend=options["backend"])
            if moved:
                self.stdout.write(f"{moved} demo action(s) now call {options['backend']}.")
        origins = ", ".join(site.origin_list) or "none"
        self.stdout.write(
            self.style.SUCCESS(f"Demo widget site '{site.key}' ready (origins: {origins}).")
        )
