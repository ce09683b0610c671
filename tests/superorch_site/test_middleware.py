"""The project's middlewares work in both of Django's modes (the app is ASGI-only)."""

from asgiref.sync import iscoroutinefunction
from django.http import HttpResponse
from django.test import RequestFactory

from superorch_site.middleware import (
    DEFAULT_POLICY,
    ContentSecurityPolicyMiddleware,
    RequestMetricsMiddleware,
)

MIDDLEWARES = (ContentSecurityPolicyMiddleware, RequestMetricsMiddleware)


def _page(request):
    return HttpResponse("ok")


async def _apage(request):
    return HttpResponse("ok")


def _wrapped(handler):
    for middleware in reversed(MIDDLEWARES):
        handler = middleware(handler)
    return handler


def test_middlewares_are_sync_and_async_capable():
    for middleware in MIDDLEWARES:
        assert middleware.sync_capable and middleware.async_capable
        assert iscoroutinefunction(middleware(_apage))
        assert not iscoroutinefunction(middleware(_page))


def test_sync_chain_sets_the_policy():
    response = _wrapped(_page)(RequestFactory().get("/"))
    assert response.headers["Content-Security-Policy"] == DEFAULT_POLICY
    assert response.headers["Referrer-Policy"] == "same-origin"


async def test_async_chain_sets_the_policy_and_counts_the_request():
    from orchestrator.metrics import HTTP_REQUESTS

    counter = HTTP_REQUESTS.labels("GET", "200")
    before = counter._value.get()
    response = await _wrapped(_apage)(RequestFactory().get("/"))
    assert response.headers["Content-Security-Policy"] == DEFAULT_POLICY
    assert counter._value.get() == before + 1


def test_the_admin_keeps_its_own_policy():
    response = _wrapped(_page)(RequestFactory().get("/admin/"))
    assert "Content-Security-Policy" not in response.headers
