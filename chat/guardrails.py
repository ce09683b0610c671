"""The chat app's part of the guardrails (docs/guardrails.md): a tripped guardrail recorded on
its turn, staff marking a block as a false positive (kept to retrain on), the sites'
identity secrets kept out of replies, and the counts the support desk shows.

The classifier itself is orchestrator.guardrails; this module hands it the marked
messages and the secrets through the sources it registers (ChatConfig.ready).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from orchestrator import dashboard
from orchestrator import guardrails as orchestrator_guardrails
from orchestrator.domain.enums import GuardrailName
from orchestrator.domain.guardrails import Verdict

from .models import Message, Site, Turn, TurnEvent


def guardrail_fields(*, turn: Turn, verdict: Verdict | None) -> dict[str, Any]:
    """The Turn columns for a tripped guardrail (none when nothing tripped); its full
    verdict goes to the transcript as a guardrail event."""
    if verdict is None or not verdict.blocked:
        return {}
    TurnEvent.objects.create(turn=turn, kind=TurnEvent.Kind.GUARDRAIL, data=verdict.as_dict())
    return {
        "guardrail": str(verdict.guardrail),
        "guardrail_kind": verdict.kind[:20],
        "guardrail_score": round(verdict.score, 4),
    }


def turn_mark_false_positive(*, turn_id: int, user) -> bool:
    """Staff say the guardrail was wrong to stop this turn: its message is trained on as
    ordinary from now on (the classifier retrains in the background). True if it was
    marked now; marking twice, or a turn no guardrail stopped, changes nothing."""
    with transaction.atomic():
        marked = (
            Turn.objects.filter(pk=turn_id, false_positive=False)
            .exclude(guardrail="")
            .update(false_positive=True, false_positive_by=user, false_positive_at=timezone.now())
        )
    return bool(marked)


def false_positive_texts() -> list[str]:
    """The messages of the turns staff marked as false positives (ordinary, to train on).
    Output blocks are about replies and off-topic declines about the site's topics, not
    attacks: neither is trained on."""
    ids = Turn.objects.filter(false_positive=True).exclude(
        guardrail__in=[GuardrailName.OUTPUT, GuardrailName.OFF_TOPIC]
    )
    return list(
        Message.objects.filter(pk__in=ids.values("reply_to_id"))
        .order_by("id")
        .values_list("text", flat=True)
    )


def site_secrets() -> list[str]:
    """The sites' identity secrets: no reply may contain one."""
    return list(Site.objects.values_list("identity_secret", flat=True))


def register() -> None:
    """Hand the orchestrator's guardrails their sources, and the dashboard its panel
    (ChatConfig.ready)."""
    orchestrator_guardrails.register_ordinary_examples(false_positive_texts)
    orchestrator_guardrails.register_secret_values(site_secrets)
    dashboard.register_panel(dashboard_panel)


def dashboard_panel(start: datetime, end: datetime) -> dict[str, Any]:
    """The performance dashboard's guardrail figures for its window."""
    counts = guardrail_counts(start=start, end=end)
    rows = [("Turns stopped by a guardrail", counts["blocked"])]
    rows += [(f"{row['guardrail']}: {row['kind']}", row["n"]) for row in counts["by"]]
    rows.append(("Marked as false positives by staff", counts["false_positives"]))
    link = reverse("admin:chat_turn_changelist") + "?status__exact=blocked"
    return {"title": "Guardrails", "rows": rows, "link": link}


def guardrail_counts(*, start: datetime, end: datetime) -> dict[str, Any]:
    """Turns stopped by a guardrail in [start, end), from the recorded turns: in all, by
    guardrail and kind, and how many staff marked as false positives."""
    rows = Turn.objects.filter(started_at__gte=start, started_at__lt=end).exclude(guardrail="")
    counts: Counter[tuple[str, str]] = Counter()
    false_positives = 0
    for guardrail, kind, marked in rows.values_list(
        "guardrail", "guardrail_kind", "false_positive"
    ):
        counts[(guardrail, kind)] += 1
        false_positives += bool(marked)
    return {
        "blocked": sum(counts.values()),
        "false_positives": false_positives,
        "by": [
            {"guardrail": g, "kind": k or "-", "n": n}
            for (g, k), n in sorted(counts.items(), key=lambda item: -item[1])
        ],
    }
