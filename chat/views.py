"""Pages: the chat at /, and a health check."""

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from orchestrator.providers import offline_mode

from .services import DEFAULT_SITE_KEY, site_ensure_default


@require_GET
def chat_page(request: HttpRequest) -> HttpResponse:
    site = site_ensure_default()
    return render(
        request,
        "chat/index.html",
        {
            "site_key": DEFAULT_SITE_KEY,
            "ws_path": "/ws/chat/",
            "greeting": site.greeting,
            "suggestions": list(site.suggestions or []),
            "offline_model": offline_mode(),
        },
    )


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
