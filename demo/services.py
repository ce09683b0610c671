"""Writes and reads for the demo: the widget site the example host page embeds, and the
demo backend's signing secret and address."""

from __future__ import annotations

from django.db import close_old_connections

from chat.models import Site
from chat.services import DEFAULT_SUGGESTIONS
from orchestrator.models import Action, ActionSecret

from .backend import DEMO_SECRET_NAME

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


def demo_backend_secret() -> str:
    """The signing secret the demo backend checks requests with: the seeded actions' own
    (a real system has it in its configuration; this demo reads it from the database)."""
    close_old_connections()
    row = ActionSecret.objects.filter(name=DEMO_SECRET_NAME).first()
    return (row.reveal() if row else None) or ""


def demo_actions_point_at(*, backend: str) -> int:
    """Point the actions signed with the demo secret at the demo backend's address
    (make run serves it on PORT+1); returns how many changed."""
    backend = backend.rstrip("/")
    changed = 0
    for action in Action.objects.filter(signing_secret__name=DEMO_SECRET_NAME):
        _, _, rest = action.url_template.partition("://")
        path = rest.partition("/")[2]
        url = f"{backend}/{path}"
        if rest and url != action.url_template:
            action.url_template = url
            action.save(update_fields=["url_template", "updated_at"])
            changed += 1
    return changed
