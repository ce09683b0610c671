"""Prometheus metrics (prometheus-client), served at /metrics (see monitoring_views).

Counters and histograms are updated where things happen (HTTP requests, sockets,
turns, agent runs, workflow runs); breaker states are read from the database at
scrape time, so every process reports the shared truth. With several processes per
host, set PROMETHEUS_MULTIPROC_DIR (an empty directory, wiped at start) and the
endpoint aggregates them.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from . import selectors

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)

HTTP_REQUESTS = Counter(
    "superorch_http_requests_total", "HTTP requests served.", ["method", "status"]
)
HTTP_SECONDS = Histogram(
    "superorch_http_request_seconds", "HTTP request duration.", buckets=LATENCY_BUCKETS
)
SOCKETS = Gauge(
    "superorch_websocket_connections",
    "Open chat WebSocket connections.",
    multiprocess_mode="livesum",
)
TURNS_WAITING = Gauge(
    "superorch_turns_waiting",
    "Conversations with a message waiting for one of the process's turn slots "
    "(SUPERORCH_MAX_ACTIVE_TURNS).",
    multiprocess_mode="livesum",
)
CHANNEL_LAYER_DROPS = Counter(
    "superorch_channel_layer_drops_total",
    "Group messages (live frames) the channel layer dropped because a receive key was "
    "over capacity (superorch_site.layer_watch); clients resync, but it should stay 0.",
)
TURNS = Counter("superorch_turns_total", "Chat turns by outcome.", ["status", "error_code"])
AGENT_RUNS = Counter(
    "superorch_agent_runs_total", "Agent runs by outcome.", ["agent", "status", "error_kind"]
)
AGENT_SECONDS = Histogram(
    "superorch_agent_run_seconds", "An agent's part of a turn.", ["agent"], buckets=LATENCY_BUCKETS
)
TTFT_SECONDS = Histogram(
    "superorch_time_to_first_token_seconds",
    "From an agent starting to its first token.",
    ["agent"],
    buckets=LATENCY_BUCKETS,
)
TOKENS = Counter("superorch_tokens_total", "Model tokens.", ["agent", "direction"])
WORKFLOW_RUNS = Counter(
    "superorch_workflow_runs_total", "Finished workflow runs.", ["workflow", "status"]
)


def agent_run_finished(
    *,
    agent: str,
    status: str,
    error_kind: str,
    duration_ms: int,
    ttft_ms: int | None,
    input_tokens: int,
    output_tokens: int,
) -> None:
    AGENT_RUNS.labels(agent, status, error_kind).inc()
    AGENT_SECONDS.labels(agent).observe(duration_ms / 1000)
    if ttft_ms is not None:
        TTFT_SECONDS.labels(agent).observe(ttft_ms / 1000)
    if input_tokens:
        TOKENS.labels(agent, "input").inc(input_tokens)
    if output_tokens:
        TOKENS.labels(agent, "output").inc(output_tokens)


class BreakerCollector(Collector):
    """superorch_breaker_state{agent, state}: 1 for each agent's current breaker state."""

    def describe(self):
        # Registration asks for the names; answering here keeps the database out of imports.
        yield GaugeMetricFamily("superorch_breaker_state", "", labels=["agent", "state"])

    def collect(self):
        family = GaugeMetricFamily(
            "superorch_breaker_state",
            "Circuit breaker state per agent (1 = in this state).",
            labels=["agent", "state"],
        )
        try:
            states = selectors.breaker_states()
        except Exception:  # a scrape must not fail because the database is away
            return
        for agent, state in sorted(states.items()):
            family.add_metric([agent, state], 1)
        yield family


_collector = BreakerCollector()
REGISTRY.register(_collector)
