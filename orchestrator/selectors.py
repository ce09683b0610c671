"""Reads: the registry snapshot, routing, knowledge search, context and run figures."""

from __future__ import annotations

import math
import re
import threading
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from .domain import health
from .domain.conversation import Conversation, conversation_from_history
from .domain.enums import AgentRole, BreakerState, RunStatus
from .domain.routing_policy import Policy
from .domain.team import AgentSpec, Team, WorkflowSpec
from .model_choice import uses_llm
from .models import (
    AgentHealth,
    AgentProfile,
    AgentRun,
    ContextEntry,
    KnowledgeArticle,
    RoutingExample,
    RoutingSettings,
    StepRun,
    Workflow,
    WorkflowRun,
)
from .router import Router, corpus_key
from .router_store import RouterStore
from .text import tokenize


class RegistryCache:
    """What this process keeps per registry version: the team snapshot, the router's
    training corpus, and the trained routers. `reset()` forgets all of it (tests)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.team: Team | None = None
        self.corpus: tuple[str, tuple[dict[str, list[str]], list[str], str]] | None = None
        self.routers = RouterStore(
            directory=lambda: (
                Path(settings.SUPERORCH_ROUTER_CACHE_DIR)
                if settings.SUPERORCH_ROUTER_CACHE_DIR
                else None
            ),
            secret=lambda: settings.SECRET_KEY.encode(),
        )

    def reset(self) -> None:
        with self.lock:
            self.team = self.corpus = None
        self.routers.clear()


registry_cache = RegistryCache()


def registry_version() -> str:
    """Changes whenever an agent, its examples, handoffs or articles, or a workflow change."""
    agg = AgentProfile.objects.aggregate(latest=Max("updated_at"), n=Count("id"))
    flows = Workflow.objects.aggregate(latest=Max("updated_at"), n=Count("id"))
    parts = [agg["n"], agg["latest"], flows["n"], flows["latest"]]
    return ":".join(p.isoformat() if hasattr(p, "isoformat") else str(p) for p in parts)


def team_snapshot() -> Team:
    """The registry as plain data; rebuilt only when an agent, example or handoff changed."""
    version = registry_version()
    with registry_cache.lock:
        cached = registry_cache.team
        if cached is not None and cached.version == version:
            return cached
    profiles = list(
        AgentProfile.objects.prefetch_related("handoffs")
        .select_related("alternative")
        .order_by("id")
    )
    examples: dict[int, list[str]] = {}
    for agent_id, text in RoutingExample.objects.values_list("agent_id", "text").order_by("id"):
        examples.setdefault(agent_id, []).append(text)
    topics: dict[int, list[str]] = {}
    for agent_id, title, tags in KnowledgeArticle.objects.values_list("agent_id", "title", "tags"):
        topics.setdefault(agent_id, []).append(f"{title} {tags.replace(',', ' ')}")
    agents = {
        p.slug: AgentSpec(
            id=p.pk,
            slug=p.slug,
            name=p.name,
            role=p.role,
            instructions=p.instructions,
            handoff_description=p.handoff_description,
            provider=p.model_provider,
            model_name=p.model_name,
            enabled=p.enabled,
            tools=tuple(p.tools or ()),
            handoffs=tuple(h.slug for h in p.handoffs.all()),
            examples=tuple(examples.get(p.pk, ())),
            topics=tuple(topics.get(p.pk, ())),
            degraded=p.degraded,
            max_concurrency=p.max_concurrency,
            alternative=p.alternative.slug if p.alternative else None,
            timeout=float(p.timeout_seconds),
        )
        for p in profiles
    }
    flows = tuple(
        WorkflowSpec(
            slug=w.slug,
            name=w.name,
            description=w.description,
            triggers=tuple(w.trigger_list),
        )
        for w in Workflow.objects.filter(enabled=True).order_by("name")
    )
    team = Team(agents=agents, version=version, workflows=flows)
    with registry_cache.lock:
        registry_cache.team = team
    return team


def router_for(team: Team, *, wait: bool = False) -> Router:
    """The router trained on the team's specialists.

    Disabled and degraded specialists stay in it, so their messages are recognised and
    sent to their alternative; the fallback agent's examples teach "nothing fits".
    Routers are kept by a hash of their training texts, so a registry is trained once;
    after a change the new one trains on a background thread while the previous one
    keeps answering (settings.SUPERORCH_ROUTER_RETRAIN, see router_store). Training is
    CPU work: call this from a worker thread.
    """
    background = not wait and settings.SUPERORCH_ROUTER_RETRAIN == "background"
    documents, fallback, key = router_corpus(team)
    return registry_cache.routers.get(documents, fallback, background=background, key=key)


def router_corpus(team: Team) -> tuple[dict[str, list[str]], list[str], str]:
    """The router's training texts and their hash, worked out once per registry version
    (a turn asks for the router several times: routing, the offline model, tools)."""
    cached = registry_cache.corpus
    if cached is not None and team.version and cached[0] == team.version:
        return cached[1]
    documents = {
        a.slug: [*a.examples, *a.topics, a.handoff_description]
        for a in team.agents.values()
        if a.role == AgentRole.SPECIALIST
    }
    fallback = [t for a in team.agents.values() if a.role == AgentRole.FALLBACK for t in a.examples]
    corpus = (documents, fallback, corpus_key(documents, fallback))
    if team.version:
        with registry_cache.lock:
            registry_cache.corpus = (team.version, corpus)  # only the current one is asked for
    return corpus


def routing_policy(*, team: Team) -> Policy:
    """The routing settings staff chose, and whether an LLM can decide when unsure."""
    row = RoutingSettings.load()
    return Policy(
        threshold=row.threshold if row.threshold is not None else Router.threshold,
        when_unsure=row.when_unsure,
        topic_change_margin=row.topic_change_margin,
        llm_available=uses_llm(team.orchestrator),
    )


def routing_conversation(
    *, team: Team, history: list[dict[str, str]] | None, active: str | None
) -> Conversation:
    """What routing knows of a conversation, from a turn's history (its replies name
    their agent) and the conversation's active agent."""
    if not history:
        return Conversation(active=active)
    specialists = [a.slug for a in team.agents.values() if a.role == AgentRole.SPECIALIST]
    return conversation_from_history(history, active=active, specialists=specialists)


def trial_history(
    *, earlier: list[str], answered_by: str | None, text: str
) -> list[dict[str, str]]:
    """A history for "Try routing": the user's earlier messages, each answered by
    `answered_by` (the specialist the conversation was with), then the message tried."""
    history: list[dict[str, str]] = []
    for line in earlier:
        history.append({"role": "user", "content": line})
        if answered_by:
            history.append({"role": "assistant", "content": "", "agent": answered_by})
    return [*history, {"role": "user", "content": text}]


def in_flight_since(now: datetime | None = None) -> datetime:
    """Runs started before this are not in flight, whatever their status says: nothing
    runs longer than a turn may (SUPERORCH_TURN_TIMEOUT), so a run still `running` after
    that was left by a process that died (services.agent_runs_abandon closes it)."""
    return (now or timezone.now()) - timedelta(seconds=settings.SUPERORCH_TURN_TIMEOUT)


def agent_runs_in_flight(now: datetime | None = None) -> QuerySet[AgentRun]:
    """The one definition of "in flight", used by routing, the dashboard and /metrics."""
    return AgentRun.objects.filter(status=RunStatus.RUNNING, started_at__gte=in_flight_since(now))


def in_flight_counts(*, team: Team) -> dict[str, int]:
    """Runs in progress per agent, for agents with a concurrency limit (else no query)."""
    limited = [a.slug for a in team.agents.values() if a.max_concurrency]
    if not limited:
        return {}
    rows = (
        agent_runs_in_flight()
        .filter(agent_slug__in=limited)
        .values("agent_slug")
        .annotate(n=Count("id"))
    )
    return {row["agent_slug"]: row["n"] for row in rows}


def breaker_states() -> dict[str, str]:
    """Agents whose circuit breaker is not closed: slug -> "open" or "half_open"."""
    now = timezone.now()
    cooldown = settings.SUPERORCH_BREAKER_COOLDOWN
    rows = AgentHealth.objects.exclude(state=BreakerState.CLOSED).values_list(
        "agent_slug", "state", "consecutive_failures", "opened_at"
    )
    return {
        slug: health.effective(health.Breaker(state, n, opened), now=now, cooldown=cooldown)
        for slug, state, n, opened in rows
    }


# --- Knowledge base -------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z0-9]+")


def knowledge_search(*, agent_slug: str, query: str, limit: int = 3) -> list[dict[str, Any]]:
    """Articles of one agent that match the query, best first, each with a relevance score.

    PostgreSQL's full-text search on PostgreSQL; elsewhere TF-IDF over title, tags and body.
    """
    articles = KnowledgeArticle.objects.filter(agent__slug=agent_slug)
    if connection.vendor == "postgresql":
        return _knowledge_search_postgres(articles, query, limit)
    return _knowledge_search_tfidf(list(articles), query, limit)


def _knowledge_search_postgres(articles, query: str, limit: int) -> list[dict[str, Any]]:
    from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector

    terms = [w.lower() for w in _WORD.findall(query)][:32]
    if not terms:
        return []
    search_query = SearchQuery(" | ".join(terms), search_type="raw", config="english")
    vector = (
        SearchVector("title", weight="A", config="english")
        + SearchVector("tags", weight="A", config="english")
        + SearchVector("body", weight="B", config="english")
    )
    rows = (
        articles.annotate(rank=SearchRank(vector, search_query))
        .filter(rank__gt=0.05)
        .order_by("-rank", "title")[:limit]
    )
    return [_article_dict(a, float(a.rank)) for a in rows]


def _knowledge_search_tfidf(articles: list[KnowledgeArticle], query: str, limit: int):
    q_terms = set(tokenize(query))
    if not q_terms or not articles:
        return []
    docs = [
        (a, tokenize(f"{a.title} {a.title} {a.tags.replace(',', ' ')} {a.tags}"), tokenize(a.body))
        for a in articles
    ]
    n = len(docs)
    df = {t: sum(1 for _, head, body in docs if t in head or t in body) for t in q_terms}
    scored = []
    for article, head, body in docs:
        score = 0.0
        for term in q_terms:
            if not df[term]:
                continue
            idf = math.log((n + 1) / df[term]) + 0.5
            tf = 2.0 * head.count(term) + min(body.count(term), 5) * 0.5
            score += idf * math.log1p(tf)
        norm = score / math.sqrt(len(q_terms))
        if norm >= 0.6:
            scored.append((norm, article))
    scored.sort(key=lambda item: (-item[0], item[1].title))
    return [_article_dict(a, round(s, 3)) for s, a in scored[:limit]]


def _article_dict(article: KnowledgeArticle, score: float) -> dict[str, Any]:
    return {"title": article.title, "body": article.body, "tags": article.tag_list, "score": score}


# --- Shared context -----------------------------------------------------------------


def context_get(*, conversation_id: uuid.UUID | None, key: str) -> Any:
    """The conversation's value of `key`, else the global one, else None."""
    rows = ContextEntry.objects.filter(
        Q(conversation_id=conversation_id) | Q(conversation_id__isnull=True), key=key
    ).values_list("conversation_id", "value")
    found = dict(rows)
    return found.get(conversation_id, found.get(None))


def context_visible(*, conversation_id: uuid.UUID | None) -> dict[str, Any]:
    """What agents see: the global keys, overridden by the conversation's own."""
    rows = (
        ContextEntry.objects.filter(
            Q(conversation_id__isnull=True) | Q(conversation_id=conversation_id)
        )
        .order_by("key")
        .values_list("conversation_id", "key", "value")
    )
    visible: dict[str, Any] = {}
    for _conversation, key, value in sorted(rows, key=lambda r: r[0] is not None):
        visible[key] = value
    return visible


def starting_agent(team: Team, active: str | None) -> AgentSpec | None:
    """Follow-ups start with the agent that answered last, if it is still enabled."""
    spec = team.get(active)
    if spec is not None and spec.enabled:
        return spec
    return team.orchestrator or team.fallback


def agent_for_turn_start(*, active: str | None) -> AgentSpec | None:
    return starting_agent(team_snapshot(), active)


# --- Workflows ------------------------------------------------------------------------


def workflow_progress(*, run_id: int) -> dict[str, Any]:
    """A run's status and its agent steps' states, for progress reports."""
    run = WorkflowRun.objects.get(pk=run_id)
    steps = list(
        run.steps.filter(kind=StepRun.Kind.AGENT).values_list(
            "step_id", "agent_slug", "status", "attempts"
        )
    )
    return {
        "status": run.status,
        "result": run.result,
        "error": run.error,
        "done": run.done_steps,
        "total": run.total_steps,
        "steps": steps,
    }
