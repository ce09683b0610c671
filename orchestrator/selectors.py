"""Reads: the registry snapshot, routing, knowledge search, context and run figures."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import threading
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from . import guardrails, knowledge
from .domain import health
from .domain.actions import ActionSpec
from .domain.conversation import Conversation, conversation_from_history
from .domain.enums import AgentRole, BreakerState, RunStatus
from .domain.guardrails import EMAIL, ScreenRules, Verdict
from .domain.mcp import McpServerSpec, listing_from
from .domain.routing_policy import Policy
from .domain.team import AgentSpec, Team, WorkflowSpec
from .encoder import load_encoder
from .model_choice import uses_llm
from .models import (
    Action,
    AgentHealth,
    AgentProfile,
    AgentRun,
    ContextEntry,
    KnowledgeArticle,
    McpServer,
    RoutingExample,
    RoutingSettings,
    StepRun,
    Workflow,
    WorkflowRun,
)
from .router import Router, corpus_key
from .router_store import RouterStore
from .text import plain_text

logger = logging.getLogger(__name__)


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
        self.guardrails = RouterStore(
            keep=2,
            directory=lambda: (
                Path(settings.SUPERORCH_GUARDRAIL_CACHE_DIR)
                if settings.SUPERORCH_GUARDRAIL_CACHE_DIR
                else None
            ),
            secret=lambda: settings.SECRET_KEY.encode(),
            build=guardrails.train,
            kind=lambda: guardrails.InputClassifier,
            suffix="guardrail",
            version=guardrails.classifier_version(),
        )

    def reset(self) -> None:
        with self.lock:
            self.team = self.corpus = None
        self.routers.clear()
        self.guardrails.clear()


registry_cache = RegistryCache()


VERSIONED = (AgentProfile, Workflow, Action, McpServer)  # small tables: count and latest change


@functools.cache
def _version_sql(vendor: str) -> str:
    """One statement of scalar subqueries: each registry table's row count and latest
    change (a turn asks at its start and at each tool call: one round trip, not four)."""
    quote = connection.ops.quote_name
    parts = []
    for model in VERSIONED:
        table = quote(model._meta.db_table)
        column = quote(model._meta.get_field("updated_at").column)
        parts += [f"(SELECT COUNT(*) FROM {table})", f"(SELECT MAX({column}) FROM {table})"]
    return "SELECT " + ", ".join(parts)


def registry_version() -> str:
    """Changes whenever an agent, its examples, handoffs, articles or permissions, a
    workflow, an action or an MCP server change (each saves its row's updated_at)."""
    with connection.cursor() as cursor:
        cursor.execute(_version_sql(connection.vendor))
        parts = cursor.fetchone()
    return ":".join(p.isoformat() if hasattr(p, "isoformat") else str(p) for p in parts)


def team_snapshot() -> Team:
    """The registry as plain data; rebuilt only when an agent, example or handoff changed."""
    version = registry_version()
    with registry_cache.lock:
        cached = registry_cache.team
        if cached is not None and cached.version == version:
            return cached
    profiles = list(
        AgentProfile.objects.prefetch_related(
            "handoffs", "actions", "knowledge_bases", "mcp_servers"
        )
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
        p.slug: _agent_spec(p, examples.get(p.pk, ()), topics.get(p.pk, ())) for p in profiles
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
    actions = {a.name: action_spec(a) for a in Action.objects.order_by("name")}
    mcp_servers = {m.name: mcp_server_spec(m) for m in McpServer.objects.order_by("name")}
    team = Team(
        agents=agents, version=version, workflows=flows, actions=actions, mcp_servers=mcp_servers
    )
    with registry_cache.lock:
        registry_cache.team = team
    return team


def _agent_spec(p: AgentProfile, examples, topics) -> AgentSpec:
    """One agent of the registry as plain data (its relations prefetched)."""
    return AgentSpec(
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
        examples=tuple(examples),
        topics=tuple(topics),
        degraded=p.degraded,
        max_concurrency=p.max_concurrency,
        alternative=p.alternative.slug if p.alternative else None,
        timeout=float(p.timeout_seconds),
        actions=tuple(a.name for a in p.actions.all()),
        knowledge=tuple(k.slug for k in p.knowledge_bases.all()),
        context_keys=tuple(p.context_keys or ()),
        mcp_servers=tuple(m.name for m in p.mcp_servers.all()),
    )


def action_spec(action: Action) -> ActionSpec:
    return ActionSpec(
        id=action.pk,
        name=action.name,
        description=action.description,
        method=action.method,
        url_template=action.url_template,
        examples=tuple(action.example_list),
        schema=action.arguments_schema if isinstance(action.arguments_schema, dict) else {},
        approval=action.approval,
        approval_amount_path=action.approval_amount_path,
        approval_threshold=action.approval_threshold,
        approval_summary=action.approval_summary,
        response_fields=tuple(f for f in action.response_fields or () if isinstance(f, str)),
        enabled=action.enabled,
        version=action.updated_at.isoformat() if action.updated_at else "",
    )


def mcp_server_spec(server: McpServer) -> McpServerSpec:
    allowed = server.allowed_tools if isinstance(server.allowed_tools, list) else []
    return McpServerSpec(
        id=server.pk,
        name=server.name,
        url=server.url,
        enabled=server.enabled,
        timeout=float(server.timeout_seconds),
        allowed_tools=tuple(a for a in allowed if isinstance(a, str)),
        tools=listing_from(server.tools if isinstance(server.tools, list) else []),
        version=server.updated_at.isoformat() if server.updated_at else "",
    )


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


def input_classifier(*, wait: bool = False) -> guardrails.InputClassifier:
    """The input guardrail, trained on the shipped dev rows and the messages staff marked
    as false positives. After a new mark it retrains on a background thread while the
    previous one answers (unless `wait`); only a cold process without a saved one waits.
    CPU work: call this from a worker thread."""
    corpus = guardrails.training_corpus()
    return registry_cache.guardrails.get(corpus, [], background=not wait)


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

HELP_QUERY_MAX_CHARS = 200  # a help centre search longer than this is refused in plain words
HELP_RESULTS = 20


def article_value(article: KnowledgeArticle) -> knowledge.Article:
    return knowledge.Article(
        slug=article.slug, title=article.title, body=article.body, tags=tuple(article.tag_list)
    )


def knowledge_search(*, agent_slug: str, query: str, limit: int = 6) -> list[dict[str, Any]]:
    """The sections of one agent's published articles that best answer the query, best
    first: each with its article's title, help centre link (to the section) and score.

    The same ranking on every database (orchestrator/knowledge.py: BM25 and, when the
    MiniLM weights are installed, sentence embeddings), so what `answers_eval` measures
    is what the chat does. An agent has a few dozen sections; their embeddings are
    computed once and kept in the encoder's cache. Callers run it off the event loop.
    """
    articles = _agent_articles(agent_slug)
    meaning = section_embeddings.encoder_for(list(articles)) is not None
    return [passage_dict(r) for r in section_index(articles, meaning).rank(query, limit=limit)]


@functools.lru_cache(maxsize=64)
def section_index(
    articles: tuple[knowledge.Article, ...], meaning: bool = False
) -> knowledge.SectionIndex:
    """The index of a set of articles, built once (not per turn or per search): an edit
    makes another set, hence another index. Ranking only reads it, so threads share it."""
    return knowledge.SectionIndex(articles, encoder=load_encoder() if meaning else None)


class SectionEmbeddings:
    """Whether a set of articles' sections are embedded yet (their vectors live in the
    encoder's cache), and embedding them on a background thread when they are not, so
    a turn never waits seconds for it (SUPERORCH_KNOWLEDGE_EMBEDDINGS)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready: set[int] = set()
        self._started: set[int] = set()

    def encoder_for(self, articles: list[knowledge.Article]) -> Any:
        mode = settings.SUPERORCH_KNOWLEDGE_EMBEDDINGS
        encoder = load_encoder() if mode != "off" and articles else None
        if encoder is None or mode == "inline":
            return encoder
        key = hash(tuple(articles))
        with self._lock:
            if key in self._ready:
                return encoder
            start = key not in self._started
            self._started.add(key)
        if start:
            threading.Thread(target=self._embed, args=(key, articles, encoder), daemon=True).start()
        return None  # words only until they are ready

    def _embed(self, key: int, articles: list[knowledge.Article], encoder: Any) -> None:
        try:
            words_only = knowledge.SectionIndex(articles, encoder=None)
            texts = words_only.embedding_texts()
            stored = _stored_vectors(texts, encoder)
            if stored is not None:  # embedded once by this installation: a file read
                encoder.prime(texts, stored)
            knowledge.SectionIndex(articles, encoder=encoder)
            if stored is None:
                _store_vectors(texts, encoder)
        except Exception:  # words only meanwhile; the next search tries again
            logger.exception("embedding knowledge sections failed")
            with self._lock:
                self._started.discard(key)
            return
        with self._lock:
            self._ready.add(key)

    def reset(self) -> None:
        with self._lock:
            self._ready.clear()
            self._started.clear()


section_embeddings = SectionEmbeddings()


def knowledge_warm_up() -> int:
    """Embed every agent's published articles now, and keep the vectors on disk (each
    set as knowledge_search builds it): the servers and workers that start next read
    them. Returns how many article sets were embedded or read."""
    encoder = load_encoder()
    if encoder is None or settings.SUPERORCH_KNOWLEDGE_EMBEDDINGS == "off":
        return 0
    slugs = KnowledgeArticle.objects.filter(published=True).values_list("agent__slug", flat=True)
    sets = 0
    for slug in sorted(set(slugs)):
        articles = _agent_articles(slug)  # as knowledge_search reads them: the same texts
        section_embeddings._embed(hash(tuple(articles)), list(articles), encoder)
        sets += 1
    return sets


def _agent_articles(agent_slug: str) -> tuple[knowledge.Article, ...]:
    rows = KnowledgeArticle.objects.filter(agent__slug=agent_slug, published=True)
    return tuple(article_value(a) for a in rows)


def _vectors_path(texts: list[str], encoder: Any) -> Path | None:
    """Where the vectors of these texts are kept (beside the trained routers,
    SUPERORCH_ROUTER_CACHE_DIR), named by the encoder and a hash of the texts."""
    if not settings.SUPERORCH_ROUTER_CACHE_DIR:
        return None
    digest = hashlib.sha256(getattr(encoder, "name", "encoder").encode())
    for text in texts:
        digest.update(b"\0" + text.encode())
    return Path(settings.SUPERORCH_ROUTER_CACHE_DIR) / f"sections-{digest.hexdigest()[:24]}.npy"


def _stored_vectors(texts: list[str], encoder: Any) -> Any:
    """The vectors saved for exactly these texts, or None (numbers only: no pickle)."""
    path = _vectors_path(texts, encoder)
    if path is None or not path.exists():
        return None
    try:
        vectors = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return vectors if vectors.shape[0] == len(texts) else None


def _store_vectors(texts: list[str], encoder: Any) -> None:
    path = _vectors_path(texts, encoder)
    if path is None:
        return
    vectors = encoder.encode(texts)  # all in the encoder's cache by now
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(partial, vectors, allow_pickle=False)
    os.replace(partial, path)  # whole or not at all, whichever process writes it


def passage_dict(ranked: knowledge.Ranked) -> dict[str, Any]:
    section = ranked.section
    article_url = reverse("chat:help-article", kwargs={"slug": section.article.slug})
    return {
        "title": section.article.title,
        "slug": section.article.slug,
        "section": section.heading,
        "index": section.index,
        "text": section.text,
        "url": f"{article_url}#{section.anchor}",
        "score": round(ranked.score, 3),
    }


def help_articles() -> QuerySet[KnowledgeArticle]:
    """What the public help centre may show: published articles, no staff-only fields."""
    return KnowledgeArticle.objects.filter(published=True).only(
        "slug", "title", "body", "tags", "updated_at"
    )


def knowledge_by_agent() -> dict[str, list[knowledge.Article]]:
    """Every published article, by its agent's name (for `answers_eval --from-db`)."""
    agents: dict[str, list[knowledge.Article]] = {}
    rows = KnowledgeArticle.objects.filter(published=True).select_related("agent")
    for row in rows.order_by("agent__name", "title"):
        agents.setdefault(row.agent.name, []).append(article_value(row))
    return agents


def help_article_get(*, slug: str) -> KnowledgeArticle | None:
    return help_articles().filter(slug=slug).first()


def help_article_search(*, query: str) -> list[dict[str, Any]]:
    """Published articles matching the query, best first, each with the best matching
    section as its snippet (one result per article). Raises ValueError, in words a
    visitor can read, for a query that is too long."""
    if len(query) > HELP_QUERY_MAX_CHARS:
        raise ValueError(f"Please search with at most {HELP_QUERY_MAX_CHARS} characters.")
    index = section_index(tuple(article_value(a) for a in help_articles()))
    results: dict[str, dict[str, Any]] = {}
    for ranked in index.rank(query, limit=len(index.sections)):
        slug = ranked.section.article.slug
        if slug not in results:
            snippet, cut = knowledge.trim_words(ranked.section.text, 30)
            snippet = plain_text(snippet)
            results[slug] = passage_dict(ranked) | {"snippet": snippet, "cut": cut}
    return list(results.values())[:HELP_RESULTS]


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


# --- Guardrails ----------------------------------------------------------------------


def guardrail_check(*, text: str) -> Verdict:
    """The input guardrail's verdict on a user's message (CPU work: a worker thread)."""
    return input_classifier().check(text)


_EMAIL_CACHE: dict[str, frozenset[str]] = {}


def published_emails(team: Team) -> frozenset[str]:
    """E-mail addresses the team already shows everyone: in the knowledge base and the
    agents' instructions (cached per registry version)."""
    cached = _EMAIL_CACHE.get(team.version)
    if cached is not None and team.version:
        return cached
    texts = [a.instructions for a in team.agents.values()]
    texts += KnowledgeArticle.objects.values_list("body", flat=True)
    found = frozenset(e.lower() for text in texts for e in EMAIL.findall(text or ""))
    _EMAIL_CACHE.clear()
    _EMAIL_CACHE[team.version] = found
    return found


def guardrail_screen_rules(*, team: Team, shown: list[str], email: str = "") -> ScreenRules:
    """What this turn's replies must not contain (orchestrator.guardrails.screen_rules):
    `shown` are the texts the user already has (the conversation, the page)."""
    return guardrails.screen_rules(
        instructions=[a.instructions for a in team.agents.values() if a.instructions],
        shown=shown,
        emails=[*published_emails(team), email],
    )
