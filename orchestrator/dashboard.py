"""The staff dashboard (inside the admin): per-agent figures, charts, health, alerts.

Thin views over orchestrator.stats (figures from recorded AgentRuns) and the health
and alert tables. The table refreshes itself with htmx; the charts poll a JSON
endpoint (static/superorch/dashboard.js, Chart.js from static/vendor).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse

from . import selectors, stats
from .domain.enums import BreakerState
from .models import AgentHealth, Alert

REFRESH_SECONDS = 10
# More figures from other apps, each a function of the window's (start, end) returning
# {"title", "rows": [(label, value)], "link": url or ""}: the chat app adds the turns its
# guardrails stopped (chat.guardrails). The orchestrator never imports the chat app.
panels: list[Callable[[datetime, datetime], dict]] = []


def register_panel(panel: Callable[[datetime, datetime], dict]) -> None:
    if panel not in panels:
        panels.append(panel)


def _window(request: HttpRequest) -> str:
    window = request.GET.get("window", "day")
    return window if window in stats.WINDOWS else "day"


def _by(request: HttpRequest) -> str:
    return "model" if request.GET.get("by") == "model" else "agent"


def dashboard_context(request: HttpRequest) -> dict:
    window, by = _window(request), _by(request)
    team = selectors.team_snapshot()
    breakers = selectors.breaker_states()
    health = {h.agent_slug: h for h in AgentHealth.objects.all()}
    rows = []
    for fig in stats.figures(window=window, by=by):
        spec = team.get(fig.key) if by == "agent" else None
        state = "ok"
        if spec is not None and (spec.degraded or not spec.enabled):
            state = "disabled" if not spec.enabled else "degraded"
        if by == "agent" and breakers.get(fig.key) == BreakerState.OPEN:
            state = "circuit open"
        elif by == "agent" and breakers.get(fig.key) == BreakerState.HALF_OPEN:
            state = "recovering"
        rows.append(
            {
                "fig": fig,
                "name": spec.name if spec else fig.key,
                "state": state,
                "last_error": health[fig.key].last_error if fig.key in health else "",
            }
        )
    # Agents that never ran in the window but are unhealthy still show up.
    shown = {r["fig"].key for r in rows}
    if by == "agent":
        for slug, state in breakers.items():
            if slug not in shown:
                spec = team.get(slug)
                rows.append(
                    {
                        "fig": stats.Figures(key=slug),
                        "name": spec.name if spec else slug,
                        "state": "circuit open" if state == BreakerState.OPEN else "recovering",
                        "last_error": health[slug].last_error if slug in health else "",
                    }
                )
    start, end = stats.window_bounds(window)
    return {
        "panels": [panel(start, end) for panel in panels],
        "window": window,
        "by": by,
        "windows": list(stats.WINDOWS),
        "rows": rows,
        "alerts": Alert.objects.filter(cleared_at__isnull=True).select_related("rule"),
        "refresh": REFRESH_SECONDS,
    }


def dashboard_view(admin_site, request: HttpRequest) -> HttpResponse:
    context = {
        **admin_site.each_context(request),
        "title": "Performance dashboard",
        **dashboard_context(request),
    }
    template = "admin/orchestrator/dashboard.html"
    if getattr(request, "htmx", False):
        template = "admin/orchestrator/_dashboard_table.html"
    return TemplateResponse(request, template, context)


def dashboard_series_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse(stats.series(window=_window(request)))
