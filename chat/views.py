"""Pages: the chat at /, and a health check."""

from django.conf import settings
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_safe

from orchestrator.model_choice import offline_mode
from superorch_site.middleware import csp_with

from . import selectors
from .origins import frame_ancestors
from .services import DEFAULT_GREETING, DEFAULT_SITE_KEY, DEFAULT_SUGGESTIONS


def _chat_limits() -> dict[str, int]:
    """The server's limits, for the page (data-* attributes read by static/superorch/chat/main.js)."""
    return {
        "max_message_chars": settings.SUPERORCH_MAX_MESSAGE_CHARS,
        "max_frame_bytes": settings.SUPERORCH_MAX_FRAME_BYTES,
    }


@require_safe
def chat_page(request: HttpRequest) -> HttpResponse:
    """Reads only: the default site comes from the migration chat 0003; without its row
    the page still renders, with the default greeting and suggestions."""
    site = selectors.site_get(key=DEFAULT_SITE_KEY)
    return render(
        request,
        "chat/index.html",
        {
            "site_key": DEFAULT_SITE_KEY,
            "ws_path": "/ws/chat/",
            "greeting": site.greeting if site else DEFAULT_GREETING,
            "suggestions": list(site.suggestions or []) if site else DEFAULT_SUGGESTIONS,
            "offline_model": offline_mode(),
            **_chat_limits(),
        },
    )


@require_safe
@xframe_options_exempt  # framing is governed by CSP frame-ancestors, per site
def widget_frame(request: HttpRequest, key: str) -> HttpResponse:
    """The chat inside the widget's iframe, served from our origin (which owns the token).

    Only the site's allowed origins (and this app) may frame it.
    """
    site = selectors.site_get(key=key)
    if site is None or not site.enabled:
        raise Http404("No such chat.")
    response = render(
        request,
        "chat/widget_frame.html",
        {
            "site_key": site.key,
            "site_name": site.name,
            "ws_path": "/ws/chat/",
            "greeting": site.greeting,
            "suggestions": list(site.suggestions or []),
            "offline_model": offline_mode(),
            "accent": site.accent_color,
            "theme": site.theme,
            "position": site.position,
            "language": site.language,
            "parent_origins": site.origin_list,
            **_chat_limits(),
        },
    )
    response.headers["Content-Security-Policy"] = csp_with(
        frame_ancestors=frame_ancestors(site.origin_list)
    )
    return response


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
