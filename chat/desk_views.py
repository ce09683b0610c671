"""The support desk's figures page (inside the admin, staff only): thin views over
chat.desk_stats. The charts poll a JSON endpoint (static/superorch/desk.js, Chart.js
from static/vendor). Registered by chat.admin (ConversationAdmin.get_urls)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse

from orchestrator.stats import WINDOWS

from . import desk_stats

REFRESH_SECONDS = 60
SOURCE_WORDS = {
    "user": "The user asked (button)",
    "words": "The user asked in words",
    "agent": "An agent escalated",
    "errors": "No model could answer",
    "feedback": "Repeated thumbs-down",
    "staff": "Staff took over",
}


def _window(request: HttpRequest) -> str:
    window = request.GET.get("window", "day")
    return window if window in WINDOWS else "day"


def desk_view(admin_site, request: HttpRequest) -> HttpResponse:
    window = _window(request)
    desk = desk_stats.figures(window=window)
    context = {
        **admin_site.each_context(request),
        "title": "Support desk",
        "window": window,
        "windows": list(WINDOWS),
        "desk": desk,
        "sources": [
            {"key": key, "words": SOURCE_WORDS.get(key, key), "n": n}
            for key, n in desk.escalations.items()
        ],
        "scores": sorted(desk.csat.distribution.items()),
        "refresh": REFRESH_SECONDS,
    }
    return TemplateResponse(request, "admin/chat/desk.html", context)


def desk_series_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse(desk_stats.series(window=_window(request)))
