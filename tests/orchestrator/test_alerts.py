"""Alert rules: an alert fires once per incident, clears once, and tells people."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from orchestrator import alerts
from orchestrator.models import AgentRun, Alert, AlertRule

pytestmark = pytest.mark.django_db(transaction=True)


class Hook:
    """A real HTTP endpoint on 127.0.0.1 that records the webhook POSTs it gets."""

    def __init__(self) -> None:
        self.posts: list[tuple[bytes, str, str]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.posts.append(
                    (
                        body,
                        self.headers.get("X-Superorch-Signature", ""),
                        self.headers.get("X-Superorch-Timestamp", ""),
                    )
                )
                self.send_response(204)
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.httpd.shutdown()


def runs(n, status, ms=100, agent="billing"):
    AgentRun.objects.bulk_create(
        AgentRun(
            agent_slug=agent,
            conversation_id=uuid.uuid4(),
            turn_id=uuid.uuid4(),
            provider="local",
            model_name="m",
            status=status,
            duration_ms=ms,
            started_at=timezone.now() - timedelta(seconds=30),
        )
        for _ in range(n)
    )


def test_an_error_rate_alert_fires_once_and_clears_once(hook):
    rule = AlertRule.objects.create(
        name="Billing errors",
        metric="error_rate",
        agent_slug="billing",
        threshold=0.5,
        window_minutes=15,
        min_runs=3,
        email="ops@example.com",
        webhook_url=hook.url,
        webhook_secret="s3cret",
    )
    runs(2, "error")
    assert alerts.alerts_evaluate() == {"raised": 0, "cleared": 0}  # too few runs to judge
    runs(2, "error")
    runs(1, "ok")
    assert alerts.alerts_evaluate() == {"raised": 1, "cleared": 0}
    assert alerts.alerts_evaluate() == {"raised": 0, "cleared": 0}  # still the same incident
    alert = Alert.objects.get()
    assert alert.value == pytest.approx(0.8) and alert.cleared_at is None
    assert len(hook.posts) == 1 and len(mail.outbox) == 1
    body, signature, timestamp = hook.posts[0]
    assert abs(int(timestamp) - time.time()) < 60
    assert signature == alerts.webhook_signature("s3cret", timestamp, body)
    assert signature != alerts.webhook_signature("s3cret", str(int(timestamp) - 600), body)
    payload = json.loads(body)
    assert (payload["alert"], payload["state"], payload["agent"]) == (
        "Billing errors",
        "raised",
        "billing",
    )
    assert "80.0%" in payload["text"] and "Billing errors" in mail.outbox[0].subject

    AgentRun.objects.update(started_at=timezone.now() - timedelta(hours=2))
    assert alerts.alerts_evaluate() == {"raised": 0, "cleared": 0}  # no data is no recovery
    AgentRun.objects.update(started_at=timezone.now() - timedelta(seconds=30))
    runs(20, "ok")  # the figure recovers: 4 errors in 25 runs
    assert alerts.alerts_evaluate() == {"raised": 0, "cleared": 1}
    assert alerts.alerts_evaluate() == {"raised": 0, "cleared": 0}
    alert.refresh_from_db()
    assert alert.cleared_at is not None and alert.last_value == pytest.approx(0.16)
    assert [json.loads(b)["state"] for b, _, _ in hook.posts] == ["raised", "cleared"]
    assert len(mail.outbox) == 2 and "Recovered" in mail.outbox[1].subject
    assert "webhook HTTP 204" in alert.notified and "emailed ops@example.com" in alert.notified
    # A new incident is a new alert.
    runs(40, "error")
    assert alerts.alerts_evaluate()["raised"] == 1 and rule.alerts.count() == 2


def test_a_p95_latency_alert_and_its_banner_and_command(admin_client):
    AlertRule.objects.create(
        name="Slow", metric="p95_ms", threshold=1000, window_minutes=5, min_runs=1
    )
    runs(5, "ok", ms=3000)
    call_command("check_alerts", stdout=open("/dev/null", "w"))  # noqa: SIM115
    alert = Alert.objects.get()
    assert alert.value == pytest.approx(3000)
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert 'data-testid="alert-banner"' in page and "Slow" in page


def test_an_unreachable_webhook_is_recorded_not_raised():
    AlertRule.objects.create(
        name="x", metric="error_rate", threshold=0.1, min_runs=1, webhook_url="http://127.0.0.1:9/"
    )
    runs(3, "error")
    assert alerts.alerts_evaluate()["raised"] == 1
    assert "webhook failed" in Alert.objects.get().notified


def test_maybe_evaluate_runs_at_most_once_per_interval(settings):
    settings.SUPERORCH_ALERT_INTERVAL = 3600
    AlertRule.objects.create(name="x", metric="error_rate", threshold=0.1, min_runs=1)
    runs(3, "error")
    alerts.throttle.reset()
    thread = alerts.alerts_maybe_evaluate()
    assert thread is not None
    thread.join(10)
    assert Alert.objects.count() == 1
    assert alerts.alerts_maybe_evaluate() is None  # within the interval


def test_opening_the_dashboard_evaluates_nothing(admin_client, settings):
    """A GET writes nothing: alerts come from turns, check_alerts and Celery beat."""
    settings.SUPERORCH_ALERT_INTERVAL = 1
    alerts.throttle.reset()
    AlertRule.objects.create(name="x", metric="error_rate", threshold=0.1, min_runs=1)
    runs(3, "error")
    response = admin_client.get("/admin/orchestrator/agentrun/dashboard/")
    assert response.status_code == 200
    assert not Alert.objects.exists()
    assert alerts.throttle.last is None
