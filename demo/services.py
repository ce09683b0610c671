"""Writes for the demo: the widget site the example host page embeds."""

from __future__ import annotations

from chat.models import Site
from chat.services import DEFAULT_SUGGESTIONS

DEMO_WIDGET_SITE_KEY = "acme"


def site_ensure_demo_widget(*, origins: list[str]) -> Site:
    """The demo widget installation (the example host page of `make run`), with `origins` allowed."""
    site, _ = Site.objects.get_or_create(
        key=DEMO_WIDGET_SITE_KEY,
        defaults={
            "name": "Acme Cloud",
            "greeting": "Hi! Questions about Acme Cloud? Ask away.",
            "suggestions": DEFAULT_SUGGESTIONS[:3],
            "accent_color": "#0f766e",
        },
    )
    missing = [o for o in origins if o not in site.origin_list]
    if missing:
        site.allowed_origins = "\n".join([*site.origin_list, *missing])
        site.full_clean()
        site.save(update_fields=["allowed_origins"])
    return site
