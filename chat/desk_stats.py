"""Reads: the support desk's figures, from recorded rows only (docs/monitoring.md,
"Support desk figures").

Everything comes from ConversationEvent rows (each status or owner change), the
messages' times and roles, and the conversation's rating (`csat_score`, `csat_at`):
no counter is kept anywhere. Over a window of the performance dashboard
(orchestrator.stats.WINDOWS):

- CSAT: ratings given in the window, their mean and distribution;
- time to first human reply: from the start of an escalation (the `waiting` event, or
  the takeover when nobody asked) to the first staff message after it;
- time to resolution: from the first escalation since the previous resolution to the
  `resolved` event;
- escalation rate: conversations an agent answered in the window that were escalated
  in the window; escalations by source;

per agent and per member of staff. A few queries whatever the number of conversations
(each figure is one query with correlated subqueries, grouped in the database where a
group is all that is needed); the intervals behind the medians and p90s are read as one
row each and their percentiles computed here, on every database alike, with
PostgreSQL's percentile_cont interpolation (orchestrator.stats.percentile_cont).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import (
    Avg,
    Count,
    Exists,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce

from orchestrator import selectors as orchestrator_selectors
from orchestrator.stats import EpochBucket, bucket_labels, percentile_cont, window_bounds

from .enums import ConversationEventKind, ConversationStatus, EscalationSource, Role
from .models import Conversation, ConversationEvent, Message
from .people import staff_name

BOT, WAITING, HUMAN, RESOLVED = (
    ConversationStatus.BOT,
    ConversationStatus.WAITING,
    ConversationStatus.HUMAN,
    ConversationStatus.RESOLVED,
)
STATUS = ConversationEventKind.STATUS
# The start of an escalation: from the agents (or a resolved conversation) to a person,
# asked for (`waiting`) or taking over directly (`human`). waiting -> human is the
# takeover of an escalation already counted.
ESCALATION = Q(kind=STATUS, from_status__in=(BOT, RESOLVED), to_status__in=(WAITING, HUMAN))
RESOLUTION = Q(kind=STATUS, to_status=RESOLVED)
SOURCES = (
    EscalationSource.USER,
    EscalationSource.WORDS,
    EscalationSource.AGENT,
    EscalationSource.ERRORS,
    EscalationSource.FEEDBACK,
    EscalationSource.STAFF,
)
SCORES = (1, 2, 3, 4, 5)


# --- The figures ------------------------------------------------------------------------


def seconds_words(seconds: float | None) -> str:
    """A duration for people: '45 s', '4 min 10 s', '2 h 5 min', '3 d 4 h'."""
    if seconds is None:
        return ""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min" if s % 3600 // 60 else f"{s // 3600} h"
    return f"{s // 86400} d {s % 86400 // 3600} h" if s % 86400 // 3600 else f"{s // 86400} d"


@dataclass
class Timing:
    """Measured intervals (seconds): how many, their median and p90."""

    count: int = 0
    p50_seconds: float | None = None
    p90_seconds: float | None = None

    @classmethod
    def of(cls, seconds: list[float]) -> Timing:
        return cls(len(seconds), percentile_cont(seconds, 0.5), percentile_cont(seconds, 0.9))

    @property
    def p50_words(self) -> str:
        return seconds_words(self.p50_seconds)

    @property
    def p90_words(self) -> str:
        return seconds_words(self.p90_seconds)


@dataclass
class Csat:
    """Ratings: how many, their sum (for the mean) and how many of each score."""

    count: int = 0
    total: int = 0
    distribution: dict[int, int] = field(default_factory=lambda: dict.fromkeys(SCORES, 0))

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def add(self, row: dict[str, Any]) -> None:
        self.count += row["n"]
        self.total += row["total"] or 0
        for score in SCORES:
            self.distribution[score] += row[f"s{score}"]


@dataclass
class AgentDesk:
    slug: str
    name: str
    answered: int = 0  # conversations the agent answered in the window
    escalated: int = 0  # of those, escalated in the window with this agent answering last
    csat: Csat = field(default_factory=Csat)  # ratings of conversations no staff answered

    @property
    def escalation_rate(self) -> float | None:
        return self.escalated / self.answered if self.answered else None


@dataclass
class StaffDesk:
    user_id: int | None  # None: nobody owned it
    name: str
    first_reply: Timing = field(default_factory=Timing)
    resolution: Timing = field(default_factory=Timing)
    csat: Csat = field(default_factory=Csat)  # ratings of conversations staff answered


@dataclass
class DeskFigures:
    window: str
    since: datetime
    until: datetime
    csat: Csat = field(default_factory=Csat)
    first_reply: Timing = field(default_factory=Timing)
    resolution: Timing = field(default_factory=Timing)
    answered: int = 0  # conversations an agent answered in the window
    escalated: int = 0  # of those, escalated in the window
    escalations: dict[str, int] = field(default_factory=dict)  # per source, in the window
    unattributed_csat: Csat = field(default_factory=Csat)  # neither staff nor an agent answered
    agents: list[AgentDesk] = field(default_factory=list)
    staff: list[StaffDesk] = field(default_factory=list)

    @property
    def escalation_rate(self) -> float | None:
        return self.escalated / self.answered if self.answered else None

    @property
    def escalation_count(self) -> int:
        return sum(self.escalations.values())

    @property
    def has_data(self) -> bool:
        return bool(
            self.csat.count
            or self.first_reply.count
            or self.resolution.count
            or self.answered
            or self.escalation_count
        )


# --- Building blocks (querysets) -------------------------------------------------------------


def _in(queryset: QuerySet, column: str, since: datetime, until: datetime) -> QuerySet:
    return queryset.filter(**{f"{column}__gte": since, f"{column}__lt": until})


def _last_agent_before(conversation: Any, at: Any) -> Subquery:
    """The agent whose answer was the conversation's last at or before `at`."""
    return Subquery(
        Message.objects.filter(conversation=conversation, role=Role.ASSISTANT, created_at__lte=at)
        .order_by("-created_at", "-id")
        .values("agent_slug")[:1]
    )


def escalations_in(since: datetime, until: datetime) -> QuerySet[ConversationEvent]:
    """The starts of escalations in the window."""
    return _in(ConversationEvent.objects.filter(ESCALATION), "created_at", since, until)


def answers_in(since: datetime, until: datetime) -> QuerySet[Message]:
    return _in(Message.objects.filter(role=Role.ASSISTANT), "created_at", since, until)


def ratings_in(since: datetime, until: datetime) -> QuerySet[Conversation]:
    return _in(Conversation.objects.filter(csat_score__isnull=False), "csat_at", since, until)


def first_replies(since: datetime, until: datetime) -> list[tuple[datetime, datetime, int | None]]:
    """(escalation start, first staff reply, its author) for each first reply
    sent in the window. The start is the latest escalation at or before the reply; a
    reply is the first when no staff message came between that start and it. A staff
    message stored before authors were recorded is credited to the owner at the reply."""
    start = Subquery(
        ConversationEvent.objects.filter(
            ESCALATION,
            conversation=OuterRef("conversation_id"),
            created_at__lte=OuterRef("created_at"),
        )
        .order_by("-created_at", "-id")
        .values("created_at")[:1]
    )
    earlier = Message.objects.filter(
        conversation=OuterRef("conversation_id"),
        role=Role.STAFF,
        created_at__gte=OuterRef("start_at"),
        id__lt=OuterRef("id"),
    )
    owner = Subquery(
        ConversationEvent.objects.filter(
            conversation=OuterRef("conversation_id"), created_at__lte=OuterRef("created_at")
        )
        .order_by("-created_at", "-id")
        .values("owner_id")[:1]
    )
    replies = (
        _in(Message.objects.filter(role=Role.STAFF), "created_at", since, until)
        .annotate(start_at=start)
        .filter(start_at__isnull=False)
        .exclude(Exists(earlier))
        .annotate(owner_at_reply=Coalesce("author_id", owner, output_field=IntegerField()))
        .order_by()
    )
    return list(replies.values_list("start_at", "created_at", "owner_at_reply"))


def resolutions(since: datetime, until: datetime) -> list[tuple[datetime, datetime, int | None]]:
    """(first escalation, resolution, owner at resolution) for each `resolved` event in
    the window that an escalation led to: the first escalation after the conversation's
    previous resolution. The owner is the one who resolved it when nobody owned it."""
    same = {"conversation": OuterRef("conversation_id"), "id__lt": OuterRef("id")}
    previous = Subquery(
        ConversationEvent.objects.filter(RESOLUTION, **same).order_by("-id").values("id")[:1]
    )
    since_previous = Coalesce(OuterRef("previous_id"), Value(0), output_field=IntegerField())
    first = Subquery(
        ConversationEvent.objects.filter(ESCALATION, **same, id__gt=since_previous)
        .order_by("id")
        .values("created_at")[:1]
    )
    rows = (
        _in(ConversationEvent.objects.filter(RESOLUTION), "created_at", since, until)
        .annotate(previous_id=previous)
        .annotate(start_at=first)
        .filter(start_at__isnull=False)
        .annotate(who=Coalesce("owner_id", "actor_id"))
        .order_by()
    )
    return list(rows.values_list("start_at", "created_at", "who"))


def csat_groups(since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Ratings given in the window, grouped by who gets them: the staff member (owner at
    the resolution rated, or its resolver) when staff answered the conversation before
    it, otherwise the agent that answered last before it."""
    resolved = ConversationEvent.objects.filter(
        RESOLUTION, conversation=OuterRef("pk"), created_at__lte=OuterRef("csat_at")
    ).order_by("-created_at", "-id")
    staffed = Message.objects.filter(
        conversation=OuterRef("pk"), role=Role.STAFF, created_at__lte=OuterRef("resolved_at")
    )
    rows = (
        ratings_in(since, until)
        .annotate(
            resolved_at=Subquery(resolved.values("created_at")[:1]),
            who=Subquery(resolved.annotate(w=Coalesce("owner_id", "actor_id")).values("w")[:1]),
        )
        .annotate(
            staffed=Exists(staffed),
            agent=_last_agent_before(OuterRef("pk"), OuterRef("resolved_at")),
        )
        .order_by()
        .values("staffed", "who", "agent")
        .annotate(
            n=Count("id"),
            total=Sum("csat_score"),
            **_score_counts(),
        )
    )
    return list(rows)


def escalated_per_agent(since: datetime, until: datetime) -> dict[str, int]:
    """Per agent: conversations it answered in the window that were escalated in the
    window with its answer the last before the escalation."""
    answered_by_it = answers_in(since, until).filter(
        conversation=OuterRef("conversation_id"), agent_slug=OuterRef("agent")
    )
    rows = (
        escalations_in(since, until)
        .annotate(agent=_last_agent_before(OuterRef("conversation_id"), OuterRef("created_at")))
        .filter(Exists(answered_by_it))
        .order_by()
        .values("agent")
        .annotate(n=Count("conversation_id", distinct=True))
    )
    return {r["agent"]: r["n"] for r in rows}


# --- Putting them together ------------------------------------------------------------------


def figures(*, window: str = "day", now: datetime | None = None) -> DeskFigures:
    """The desk's figures over the window (hour, day, week: orchestrator.stats.WINDOWS)."""
    since, until = window_bounds(window, now)
    out = DeskFigures(window=window, since=since, until=until)
    answers = answers_in(since, until)
    escalations = escalations_in(since, until)
    out.answered = answers.aggregate(n=Count("conversation_id", distinct=True))["n"]
    answered_here = answers.filter(conversation=OuterRef("conversation_id"))
    out.escalated = escalations.filter(Exists(answered_here)).aggregate(
        n=Count("conversation_id", distinct=True)
    )["n"]
    per_source = escalations.order_by().values("source").annotate(n=Count("id"))
    counts = {r["source"]: r["n"] for r in per_source}
    out.escalations = {str(s): counts.get(s, 0) for s in SOURCES}

    agents = _agents(answers, escalated_per_agent(since, until))
    staff: dict[int | None, StaffDesk] = {}
    _timings(out, staff, since, until)
    _ratings(out, agents, staff, csat_groups(since, until))
    _names(agents, staff)
    out.agents = sorted(agents.values(), key=lambda a: (-a.answered, a.name.lower(), a.slug))
    out.staff = sorted(staff.values(), key=lambda s: (s.user_id is None, s.name.lower()))
    return out


def _agents(answers: QuerySet[Message], escalated: dict[str, int]) -> dict[str, AgentDesk]:
    rows = (
        answers.order_by().values("agent_slug").annotate(n=Count("conversation_id", distinct=True))
    )
    agents = {
        r["agent_slug"]: AgentDesk(slug=r["agent_slug"], name="", answered=r["n"]) for r in rows
    }
    for slug, n in escalated.items():
        agents.setdefault(slug, AgentDesk(slug=slug, name="")).escalated = n
    return agents


def _seconds(
    rows: Iterable[tuple[datetime, datetime, int | None]],
) -> dict[int | None, list[float]]:
    per: dict[int | None, list[float]] = defaultdict(list)
    for start, end, who in rows:
        per[who].append((end - start).total_seconds())
    return per


def _timings(
    out: DeskFigures, staff: dict[int | None, StaffDesk], since: datetime, until: datetime
) -> None:
    for name, rows in (
        ("first_reply", first_replies(since, until)),
        ("resolution", resolutions(since, until)),
    ):
        per = _seconds(rows)
        setattr(out, name, Timing.of([s for values in per.values() for s in values]))
        for who, values in per.items():
            member = staff.setdefault(who, StaffDesk(user_id=who, name=""))
            setattr(member, name, Timing.of(values))


def _ratings(
    out: DeskFigures,
    agents: dict[str, AgentDesk],
    staff: dict[int | None, StaffDesk],
    groups: list[dict[str, Any]],
) -> None:
    for row in groups:
        out.csat.add(row)
        if row["staffed"]:
            staff.setdefault(row["who"], StaffDesk(user_id=row["who"], name="")).csat.add(row)
        elif row["agent"]:
            agents.setdefault(row["agent"], AgentDesk(slug=row["agent"], name="")).csat.add(row)
        else:
            out.unattributed_csat.add(row)


def _names(agents: dict[str, AgentDesk], staff: dict[int | None, StaffDesk]) -> None:
    """Agents' names from the registry (the slug for one no longer there); staff names
    as the chat shows them, in one query."""
    team = orchestrator_selectors.team_snapshot()
    for slug, agent in agents.items():
        spec = team.get(slug)
        agent.name = spec.name if spec else slug
    ids = [pk for pk in staff if pk is not None]
    users = {u.pk: u for u in get_user_model().objects.filter(pk__in=ids)} if ids else {}
    for pk, member in staff.items():
        user = users.get(pk)
        member.name = (
            "Nobody (unowned)"
            if pk is None
            else (staff_name(user) if user else f"Deleted user #{pk}")
        )


# --- Chart data -----------------------------------------------------------------------------


def series(*, window: str = "day", now: datetime | None = None) -> dict[str, Any]:
    """Per chart bucket of the window: escalations per source, and the ratings given
    (how many, their mean); with the window's CSAT distribution. `has_data` is false when
    the window holds no escalation and no rating (the page says so instead of charting
    zeros)."""
    since, until = window_bounds(window, now)
    bucket, buckets, labels = bucket_labels(window, since, until)
    escalated = (
        escalations_in(since, until)
        .annotate(bucket=EpochBucket("created_at", bucket))
        .order_by()
        .values("bucket", "source")
        .annotate(n=Count("id"))
    )
    per: dict[str, dict[int, int]] = defaultdict(dict)
    for row in escalated:
        per[row["source"]][row["bucket"]] = row["n"]
    rated = {
        r["bucket"]: r
        for r in ratings_in(since, until)
        .annotate(bucket=EpochBucket("csat_at", bucket))
        .order_by()
        .values("bucket")
        .annotate(n=Count("id"), mean=Avg("csat_score"), **_score_counts())
    }
    distribution = {s: sum(r[f"s{s}"] for r in rated.values()) for s in SCORES}
    return {
        "window": window,
        "bucket_seconds": bucket,
        "labels": labels,
        "escalations": {str(s): [per[s].get(b, 0) for b in buckets] for s in SOURCES if s in per},
        "csat_mean": [round(rated[b]["mean"], 2) if b in rated else None for b in buckets],
        "csat_count": [rated[b]["n"] if b in rated else 0 for b in buckets],
        "csat_distribution": {str(s): distribution[s] for s in SCORES},
        "has_data": bool(per or rated),
    }


def _score_counts() -> dict[str, Count]:
    return {f"s{s}": Count("id", filter=Q(csat_score=s)) for s in SCORES}
