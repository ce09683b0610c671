"""The chat page and the widget frame carry the server's limits for the client (main.js)."""

import re

import pytest
from django.test import override_settings
from django.urls import reverse

from chat.models import Site


@pytest.fixture
def shop(db):
    return Site.objects.create(key="shop", name="Shop", allowed_origins="https://shop.example.com")


def _root_attrs(html: str) -> str:
    match = re.search(r'<div id="superorch"[^>]*>', html)
    assert match, "no #superorch element"
    return match.group(0)


@pytest.mark.parametrize("page", ["app", "widget"])
@override_settings(SUPERORCH_MAX_MESSAGE_CHARS=1234, SUPERORCH_MAX_FRAME_BYTES=5678)
def test_pages_carry_the_configured_limits(client, db, shop, page):
    url = "/" if page == "app" else reverse("chat:widget-frame", args=["shop"])
    html = client.get(url).content.decode()
    root = _root_attrs(html)
    assert 'data-max-message-chars="1234"' in root
    assert 'data-max-frame-bytes="5678"' in root
    assert re.search(r'<textarea id="so-input"[^>]*\bmaxlength="1234"', html)


def test_pages_load_the_chat_as_an_es_module(client, db):
    html = client.get("/").content.decode()
    assert '<script type="module" src="/static/superorch/chat/main.js"></script>' in html
    # marked and DOMPurify are classic scripts, before the module that uses their globals.
    assert html.index("vendor/marked/marked.umd.js") < html.index("superorch/chat/main.js")
    assert html.index("vendor/dompurify/purify.min.js") < html.index("superorch/chat/main.js")
    assert "superorch/chat.js" not in html
