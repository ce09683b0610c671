"""The demo app: the widget site of the example host page, and its commands."""

import threading
import urllib.request
from io import StringIO

import pytest
from django.core.management import call_command

from chat.models import Site
from demo.services import DEMO_WIDGET_SITE_KEY, site_ensure_demo_widget


def test_demo_widget_site_seed_is_idempotent(db):
    site = site_ensure_demo_widget(origins=["http://127.0.0.1:8001"])
    site_ensure_demo_widget(origins=["http://127.0.0.1:8001", "http://localhost:8001"])
    site.refresh_from_db()
    assert site.origin_list == ["http://127.0.0.1:8001", "http://localhost:8001"]


def test_demo_site_command_allows_the_given_origins(db):
    out = StringIO()
    call_command(
        "demo_site",
        "--origin",
        "http://127.0.0.1:8001/",
        "--origin",
        "HTTP://LOCALHOST:8001",
        stdout=out,
    )
    site = Site.objects.get(key=DEMO_WIDGET_SITE_KEY)
    assert site.origin_list == ["http://127.0.0.1:8001", "http://localhost:8001"]
    assert Site.objects.filter(key="demo").exists()  # the app's own page's site too
    assert "ready" in out.getvalue()


def test_seed_team_seeds_the_team_only(db):
    from orchestrator.models import AgentProfile

    out = StringIO()
    call_command("seed_team", stdout=out)
    assert AgentProfile.objects.exists()
    assert not Site.objects.filter(key=DEMO_WIDGET_SITE_KEY).exists()
    assert "Team ready" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_demo_host_serves_the_host_page(monkeypatch):
    """The host page names the app's widget loader and the demo site key."""
    from http.server import ThreadingHTTPServer

    from demo.management.commands import demo_host

    site_ensure_demo_widget(origins=[])
    servers: list[ThreadingHTTPServer] = []

    class Recording(ThreadingHTTPServer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            servers.append(self)

    monkeypatch.setattr(demo_host, "ThreadingHTTPServer", Recording)
    thread = threading.Thread(
        target=call_command,
        args=("demo_host", "--port", "0", "--app", "http://127.0.0.1:8000"),
        kwargs={"stdout": StringIO()},
        daemon=True,
    )
    thread.start()
    try:
        for _ in range(100):
            if servers:
                break
            threading.Event().wait(0.05)
        port = servers[0].server_address[1]
        for path in ("/", "/signed-in"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
                page = response.read().decode()
            assert DEMO_WIDGET_SITE_KEY in page and "/static/demo/host.js" in page
    finally:
        servers[0].shutdown()
        thread.join(timeout=5)
