"""Pages: the chat at /, the help centre at /help/, and a health check."""

from django.conf import settings
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import translation
from django.utils.cache import patch_vary_headers
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_safe

from orchestrator import selectors as orchestrator_selectors
from orchestrator.model_choice import offline_mode
from superorch_site.middleware import csp_with

from . import i18n, selectors
from .origins import frame_ancestors
from .rendering import render_article
from .services import DEFAULT_GREETING, DEFAULT_SITE_KEY, DEFAULT_SUGGESTIONS


def _chat_limits() -> dict[str, int]:
    """The server's limits, for the page (data-* attributes read by static/superorch/chat/main.js)."""
    return {
        "max_message_chars": settings.SUPERORCH_MAX_MESSAGE_CHARS,
        "max_frame_bytes": settings.SUPERORCH_MAX_FRAME_BYTES,
    }


def _attachments(site) -> dict[str, object]:
    """What the page's paperclip takes (main.js reads it; the server checks again)."""
    types = site.attachment_type_list if site else []
    return {
        "attachment_accept": ",".join(t.content_type for t in types),
        "attachment_max_bytes": site.attachment_max_bytes if site and types else 0,
    }


def _page_locale(request: HttpRequest, site_language: str) -> str:
    """The page's language (chat/i18n.py): ?locale=, the site's setting, the widget's
    ?browser= (the host page's navigator.language), Accept-Language."""
    return i18n.locale_negotiate(
        requested=request.GET.get("locale", "")[: i18n.LOCALE_CHARS + 1],
        site_language=site_language,
        browser=request.GET.get("browser", "")[: i18n.LOCALE_CHARS + 1],
        accept_language=request.headers.get("Accept-Language", ""),
    )


def _render_in(request: HttpRequest, template: str, locale: str, context: dict) -> HttpResponse:
    """The page in `locale`: its words, the scripts' words, `<html lang dir>`."""
    with translation.override(locale):
        response = render(
            request,
            template,
            {
                **context,
                "locale": locale,
                "direction": i18n.text_direction(locale),
                "page_strings": i18n.page_strings(locale),
            },
        )
    response.headers["Content-Language"] = locale
    patch_vary_headers(response, ("Accept-Language",))
    return response


@require_safe
def chat_page(request: HttpRequest) -> HttpResponse:
    """Reads only: the default site comes from the migration chat 0003; without its row
    the page still renders, with the default greeting and suggestions."""
    site = selectors.site_get(key=DEFAULT_SITE_KEY)
    locale = _page_locale(request, site.language if site else "")
    words = i18n.site_words(
        greeting=site.greeting if site else DEFAULT_GREETING,
        suggestions=site.suggestions if site else DEFAULT_SUGGESTIONS,
        translations=site.translations if site else {},
        locale=locale,
    )
    return _render_in(
        request,
        "chat/index.html",
        locale,
        {
            "site_key": DEFAULT_SITE_KEY,
            "ws_path": "/ws/chat/",
            "greeting": words.greeting,
            "suggestions": words.suggestions,
            "offline_model": offline_mode(),
            **_chat_limits(),
            **_attachments(site),
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
    locale = _page_locale(request, site.language)
    words = i18n.site_words(
        greeting=site.greeting,
        suggestions=site.suggestions,
        translations=site.translations,
        locale=locale,
    )
    response = _render_in(
        request,
        "chat/widget_frame.html",
        locale,
        {
            "site_key": site.key,
            "site_name": site.name,
            "ws_path": "/ws/chat/",
            "greeting": words.greeting,
            "suggestions": words.suggestions,
            "offline_model": offline_mode(),
            "accent": site.accent_color,
            "theme": site.theme,
            "position": site.position,
            "parent_origins": site.origin_list,
            **_chat_limits(),
            **_attachments(site),
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


# --- The help centre: public pages of the published knowledge articles ------------------


@require_safe
def help_index(request: HttpRequest) -> HttpResponse:
    """Every published article, or those matching ?q= (a GET form)."""
    query = " ".join(request.GET.get("q", "").split())
    context: dict = {"query": query, "max_query": orchestrator_selectors.HELP_QUERY_MAX_CHARS}
    status = 200
    if query:
        try:
            context["results"] = orchestrator_selectors.help_article_search(query=query)
        except ValueError as exc:
            context["error"], status = str(exc), 400
            context["query"] = query[: orchestrator_selectors.HELP_QUERY_MAX_CHARS]
    else:
        context["articles"] = orchestrator_selectors.help_articles().order_by("title")
    return render(request, "chat/help/index.html", context, status=status)


@require_safe
def help_article(request: HttpRequest, slug: str) -> HttpResponse:
    article = orchestrator_selectors.help_article_get(slug=slug)
    if article is None:
        raise Http404("No such article.")
    lead, sections = render_article(article.title, article.body)
    return render(
        request,
        "chat/help/article.html",
        {"article": article, "lead": lead, "sections": sections},
    )
