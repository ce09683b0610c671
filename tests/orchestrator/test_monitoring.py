"""/metrics for Prometheus (protected), and structured logs that carry the ids."""

from __future__ import annotations

import io
import json
import logging
import logging.config

import pytest
import structlog

from orchestrator import services

pytestmark = pytest.mark.django_db


def test_metrics_need_a_token_or_an_allowed_address(client, settings):
    settings.SUPERORCH_METRICS_TOKEN = "t0ken"
    settings.SUPERORCH_METRICS_ALLOW = []
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer t0ken").status_code == 200
    settings.SUPERORCH_METRICS_TOKEN = ""
    import ipaddress

    settings.SUPERORCH_METRICS_ALLOW = [ipaddress.ip_network("127.0.0.0/8")]
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403


def _sample(body: str, name: str, **labels: str) -> float:
    """The value of one sample of /metrics (0 when it is not there yet)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_metrics_report_runs_tokens_breakers_and_requests(client, settings):
    from orchestrator import metrics

    before = client.get("/metrics").content.decode()
    settings.SUPERORCH_BREAKER_FAILURES = 1
    services.agent_health_record(agent_slug="billing", ok=False, error="HTTP 500")
    metrics.agent_run_finished(
        agent="billing",
        status="error",
        error_kind="server_error",
        duration_ms=1200,
        ttft_ms=None,
        input_tokens=30,
        output_tokens=0,
    )
    metrics.TURNS.labels("error", "model_unavailable").inc()
    assert client.get("/healthz").status_code == 200
    body = client.get("/metrics").content.decode()

    def grew(name: str, by: float, **labels: str) -> bool:
        return _sample(body, name, **labels) - _sample(before, name, **labels) == by

    assert _sample(body, "superorch_breaker_state", agent="billing", state="open") == 1.0
    assert grew("superorch_agent_runs_total", 1, agent="billing", status="error",
                error_kind="server_error")  # fmt: skip
    assert grew("superorch_tokens_total", 30, agent="billing", direction="input")
    assert grew("superorch_turns_total", 1, status="error", error_code="model_unavailable")
    # The first scrape and /healthz, counted by the request middleware.
    assert _sample(body, "superorch_http_requests_total", method="GET", status="200") >= (
        _sample(before, "superorch_http_requests_total", method="GET", status="200") + 2
    )


def test_json_logs_carry_the_conversation_turn_and_agent(settings):
    from superorch_site.settings.base import logging_config

    config = logging_config("json", "INFO")
    stream = io.StringIO()
    config["handlers"]["console"]["stream"] = stream
    config["loggers"]["probe"] = {"handlers": ["console"], "level": "INFO", "propagate": False}
    logging.config.dictConfig(config)
    try:
        with structlog.contextvars.bound_contextvars(
            conversation="c-1", turn="t-1", agent="billing"
        ):
            logging.getLogger("probe").warning("model failed: %s", "HTTP 500")
    finally:
        logging.config.dictConfig(settings.LOGGING)
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["event"] == "model failed: HTTP 500" and line["level"] == "warning"
    assert (line["conversation"], line["turn"], line["agent"]) == ("c-1", "t-1", "billing")
    assert line["logger"] == "probe" and "timestamp" in line
