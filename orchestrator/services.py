"""Writes: routing (its probe claims), the shared context store, run records, breakers,
and the team seed."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from . import guardrails, metrics, selectors
from .domain import health
from .domain.enums import BreakerState, RunStatus
from .domain.exceptions import ContextError
from .domain.routing_policy import RoutingDecision, decide
from .domain.team import Team
from .model_choice import LOCAL_MODEL_NAME
from .models import (
    Action,
    ActionSecret,
    AgentHealth,
    AgentProfile,
    AgentRun,
    AlertRule,
    ContextEntry,
    KnowledgeArticle,
    ModelPrice,
    RoutingExample,
    Workflow,
)
from .signals import human_requested

logger = logging.getLogger(__name__)
NOBODY_TO_ASK = "No person can be asked for from here."
SEED_FILE = Path(__file__).resolve().parent / "seed" / "team.json"
WORKFLOW_SEED_FILE = SEED_FILE.with_name("workflows.json")
MAX_CONTEXT_KEY = 100
MAX_CONTEXT_VALUE_BYTES = 8192


def _check_context(key: str, value: Any) -> None:
    if not key or len(key) > MAX_CONTEXT_KEY:
        raise ContextError(f"Context keys must be 1 to {MAX_CONTEXT_KEY} characters long.")
    if len(json.dumps(value, default=str)) > MAX_CONTEXT_VALUE_BYTES:
        raise ContextError(f"Context values must be at most {MAX_CONTEXT_VALUE_BYTES} bytes.")


def context_set(*, conversation_id: uuid.UUID | None, key: str, value: Any) -> Any:
    _check_context(key, value)
    for _ in range(3):
        try:
            with transaction.atomic():
                ContextEntry.objects.update_or_create(
                    conversation_id=conversation_id, key=key, defaults={"value": value}
                )
            return value
        except IntegrityError:  # a concurrent writer created it first: update it
            continue
    raise ContextError("The context store is busy; try again.")


def context_update(*, conversation_id: uuid.UUID | None, key: str, value: Any) -> Any:
    """Merge a dict into a dict value (or append to a list); otherwise replace.

    Atomic under concurrent writers: the row is locked while it is merged, and a writer
    that loses the race to create the key merges into the winner's value.
    """
    _check_context(key, value)
    for _ in range(5):
        try:
            with transaction.atomic():
                entry = (
                    ContextEntry.objects.select_for_update()
                    .filter(conversation_id=conversation_id, key=key)
                    .first()
                )
                if entry is None:
                    ContextEntry.objects.create(
                        conversation_id=conversation_id, key=key, value=value
                    )
                    return value
                current = entry.value
                if isinstance(current, dict) and isinstance(value, dict):
                    merged: Any = {**current, **value}
                elif isinstance(current, list):
                    merged = current + (value if isinstance(value, list) else [value])
                else:
                    merged = value
                _check_context(key, merged)
                entry.value = merged
                entry.save(update_fields=["value", "updated_at"])
                return merged
        except IntegrityError:  # another writer created the key first: merge into it
            continue
    raise ContextError("The context store is busy; try again.")


def context_delete(*, conversation_id: uuid.UUID | None, key: str) -> bool:
    deleted, _ = ContextEntry.objects.filter(conversation_id=conversation_id, key=key).delete()
    return bool(deleted)


def agent_run_start(
    *,
    agent_id: int | None,
    agent_slug: str,
    conversation_id: uuid.UUID,
    turn_id: uuid.UUID,
    provider: str,
    model_name: str,
    started_at: datetime,
) -> int:
    run = AgentRun.objects.create(
        agent_id=agent_id,
        agent_slug=agent_slug,
        conversation_id=conversation_id,
        turn_id=turn_id,
        provider=provider,
        model_name=model_name,
        started_at=started_at,
    )
    return run.pk


def agent_run_finish(
    *,
    run_id: int,
    agent_slug: str,
    status: str,
    duration_ms: int,
    ttft_ms: int | None,
    requests: int,
    input_tokens: int,
    output_tokens: int,
    error: str = "",
    error_kind: str = "",
) -> None:
    metrics.agent_run_finished(
        agent=agent_slug,
        status=status,
        error_kind=error_kind,
        duration_ms=duration_ms,
        ttft_ms=ttft_ms,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )
    AgentRun.objects.filter(pk=run_id).update(
        status=status,
        error_kind=error_kind,
        duration_ms=duration_ms,
        ttft_ms=ttft_ms,
        requests=requests,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        error=error[:4000],
    )


def agent_health_record(*, agent_slug: str, ok: bool, error: str = "") -> str:
    """Feed one model call's result to the agent's circuit breaker; returns its new state."""
    now = timezone.now()
    if ok:  # the happy path, most turns: one read, no transaction, no lock
        seen = (
            AgentHealth.objects.filter(agent_slug=agent_slug)
            .values_list("state", "consecutive_failures", "last_success_at")
            .first()
        )
        fresh = seen is not None and seen[2] is not None and (now - seen[2]).total_seconds() <= 60
        if fresh and seen[:2] == (health.CLOSED, 0):
            return health.CLOSED
    with transaction.atomic():
        row, _ = AgentHealth.objects.select_for_update().get_or_create(agent_slug=agent_slug)
        if ok and row.state == health.CLOSED and row.consecutive_failures == 0:
            if row.last_success_at is None or (now - row.last_success_at).total_seconds() > 60:
                row.last_success_at = now  # refreshed at most once a minute on the happy path
                row.save(update_fields=["last_success_at", "updated_at"])
            return row.state
        after = health.record(
            health.Breaker(row.state, row.consecutive_failures, row.opened_at),
            ok=ok,
            now=now,
            threshold=settings.SUPERORCH_BREAKER_FAILURES,
            cooldown=settings.SUPERORCH_BREAKER_COOLDOWN,
        )
        row.state, row.consecutive_failures, row.opened_at = (
            after.state,
            after.failures,
            after.opened_at,
        )
        if ok:
            row.last_success_at = now
        else:
            row.last_failure_at, row.last_error = now, error[:2000]
        row.save()
        return row.state


def agent_health_reset(*, agent_slugs: list[str]) -> int:
    """Close these agents' circuit breakers (staff say their models are fine again)."""
    return AgentHealth.objects.filter(agent_slug__in=agent_slugs).update(
        state=BreakerState.CLOSED, consecutive_failures=0, opened_at=None
    )


ABANDONED = "The server stopped while this run was in progress."


def agent_runs_abandon(*, older_than: datetime | None = None) -> int:
    """Close runs left `running` by a process that died: those started before
    `older_than` (by default: before anything still running can have started, see
    selectors.in_flight_since). Run when a web process or worker starts, and by
    `manage.py answer_pending` and `workflow_resume`."""
    cutoff = older_than or selectors.in_flight_since()
    return AgentRun.objects.filter(status=RunStatus.RUNNING, started_at__lt=cutoff).update(
        status=RunStatus.ERROR, error=ABANDONED
    )


class _ProcessStart:
    """What a process does once, when it starts serving: close the runs a dead process
    left open, and start training the registry's router while the first user types."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = False

    def __call__(self) -> None:
        with self.lock:
            if self.done:
                return
            self.done = True
        try:
            agent_runs_abandon()
        except DatabaseError:
            logger.exception("Could not close abandoned agent runs")
        router_warm()
        guardrail_warm()

    def reset(self) -> None:
        self.done = False


process_start = _ProcessStart()


def guardrail_warm() -> None:
    """Start training (or loading) the input guardrail, if needed, and return at once."""
    selectors.registry_cache.guardrails.warm(guardrails.training_corpus(), [])


def router_warm() -> None:
    """Start training the current registry's router, if needed, and return at once."""
    team = selectors.team_snapshot()
    documents, fallback, key = selectors.router_corpus(team)
    selectors.registry_cache.routers.warm(documents, fallback, key)


def route_decide(
    *,
    text: str,
    active: str | None = None,
    team: Team | None = None,
    history: list[dict[str, str]] | None = None,
) -> RoutingDecision:
    """The full routing decision for a message (router, the conversation so far, load,
    health, "nothing fits"). `history`: the turn's history, oldest first, ending with
    `text` (replies name their agent); without it the message is routed on its own.
    A half-open breaker lets one turn through as its probe: the first to claim it (a
    write, hence a service); the others go elsewhere."""
    team = team or selectors.team_snapshot()
    conversation = selectors.routing_conversation(team=team, history=history, active=active)
    router = selectors.router_for(team)
    policy = selectors.routing_policy(team=team)
    in_flight = selectors.in_flight_counts(team=team)
    circuits = selectors.breaker_states()
    while True:
        decision = decide(
            team=team,
            router=router,
            text=text,
            policy=policy,
            in_flight=in_flight,
            circuits=circuits,
            conversation=conversation,
        )
        if circuits.get(decision.agent) != BreakerState.HALF_OPEN or _claim_probe(decision.agent):
            return decision
        circuits = {**circuits, decision.agent: BreakerState.OPEN}


def _claim_probe(agent_slug: str) -> bool:
    """Restart the cooldown of a half-open breaker; true for the one caller that did."""
    now = timezone.now()
    due = now - timedelta(seconds=settings.SUPERORCH_BREAKER_COOLDOWN)
    return bool(
        AgentHealth.objects.filter(
            agent_slug=agent_slug, state=BreakerState.OPEN, opened_at__lte=due
        ).update(opened_at=now)
    )


@transaction.atomic
def team_seed(
    *, path: Path = SEED_FILE, workflows_path: Path = WORKFLOW_SEED_FILE
) -> dict[str, int]:
    """Create the design document's team and its articles. Idempotent: existing agents,
    examples and articles (matched by slug, text and title) are left as staff edited them."""
    data = json.loads(path.read_text(encoding="utf-8"))
    created = {"agents": 0, "examples": 0, "articles": 0, "workflows": 0}
    profiles: dict[str, AgentProfile] = {}
    for spec in data["agents"]:
        profile, was_created = AgentProfile.objects.get_or_create(
            slug=spec["slug"],
            defaults={
                "name": spec["name"],
                "role": spec["role"],
                "instructions": spec["instructions"],
                "handoff_description": spec["handoff_description"],
                "tools": spec.get("tools", []),
            },
        )
        profiles[spec["slug"]] = profile
        if not was_created:
            continue
        created["agents"] += 1
        for text in spec.get("routing_examples", []):
            RoutingExample.objects.create(agent=profile, text=text)
            created["examples"] += 1
        for article in spec.get("articles", []):
            KnowledgeArticle.objects.create(
                agent=profile,
                title=article["title"],
                body=article["body"],
                tags=", ".join(article.get("tags", [])),
            )
            created["articles"] += 1
    for spec in data["agents"]:
        profile = profiles[spec["slug"]]
        if not profile.handoffs.exists():
            targets = [profiles[s] for s in spec.get("handoffs", []) if s in profiles]
            profile.handoffs.set(targets)
    # The offline model costs nothing; other models' prices are for staff to enter.
    ModelPrice.objects.get_or_create(model_name=LOCAL_MODEL_NAME)
    # A first alert rule: the admin banner shows when a quarter of runs fail.
    if not AlertRule.objects.exists():
        AlertRule.objects.create(
            name="Error rate above 25 %", metric="error_rate", threshold=0.25, window_minutes=15
        )
    created["actions"] = _seed_actions(data, profiles)
    flows = json.loads(workflows_path.read_text(encoding="utf-8"))["workflows"]
    for spec in flows:
        _, was_created = Workflow.objects.get_or_create(
            slug=spec["slug"],
            defaults={
                "name": spec["name"],
                "description": spec["description"],
                "triggers": spec.get("triggers", ""),
                "definition": spec["definition"],
            },
        )
        created["workflows"] += int(was_created)
    return created


def _seed_actions(data: dict[str, Any], profiles: dict[str, AgentProfile]) -> int:
    """The seed's action secrets (a random value each, made here: the demo backend reads it
    from the database, a real system gets it from staff) and actions, granted to the agents
    that list them when the action is created (staff's later edits are kept)."""
    for spec in data.get("secrets", []):
        if not ActionSecret.objects.filter(name=spec["name"]).exists():
            secret = ActionSecret(name=spec["name"], note=spec.get("note", ""))
            secret.set_value(secrets.token_urlsafe(32))
            secret.save()
    made = 0
    for spec in data.get("actions", []):
        fields = {k: v for k, v in spec.items() if k not in ("name", "examples", "signing_secret")}
        action, was_created = Action.objects.get_or_create(
            name=spec["name"],
            defaults={
                **fields,
                "examples": "\n".join(spec.get("examples", [])),
                "signing_secret": ActionSecret.objects.get(name=spec["signing_secret"]),
            },
        )
        if not was_created:
            continue
        made += 1
        users = [s["slug"] for s in data["agents"] if spec["name"] in s.get("actions", [])]
        for slug in users:
            profiles[slug].actions.add(action)
    return made


def human_request(*, conversation_id: uuid.UUID, reason: str) -> dict[str, Any]:
    """An agent asks for a person (its escalate_to_human tool). The chat app does it (a
    receiver of `human_requested`: the orchestrator never imports the chat app) and says
    what happens next; without one, the agent is told nobody can be asked."""
    replies = human_requested.send(sender=None, conversation_id=conversation_id, reason=reason)
    answers = [reply for _, reply in replies if isinstance(reply, dict)]
    return answers[0] if answers else {"ok": False, "error": NOBODY_TO_ASK}
