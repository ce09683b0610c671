"""What the orchestrator stores about conversations, by conversation id: for retention,
export and erasure (docs/privacy.md). The chat app calls these; they know nothing of it.

The orchestrator's rows point at a conversation by its UUID, not a foreign key, so they do
not go when the conversation goes: `records_delete` removes them. `RECORDS` is the one list
of those rows; a model that gains a conversation id belongs here (the privacy test looks
for leftovers in every text column of the database).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.db import models

from .models import ActionCall, AgentRun, Approval, ContextEntry, StepRun, WorkflowRun

CHUNK = 500  # ids per query (SQLite's variable limit, large IN lists on PostgreSQL)


def _chunks(ids: list[uuid.UUID]) -> Iterator[list[uuid.UUID]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def _workflow_run_ids(conversation_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    found: list[uuid.UUID] = []
    for chunk in _chunks(conversation_ids):
        found += WorkflowRun.objects.filter(conversation_id__in=chunk).values_list(
            "uuid", flat=True
        )
    return found


def _by_conversation(model: type[models.Model]) -> Callable[[list[uuid.UUID]], models.QuerySet]:
    def rows(conversation_ids: list[uuid.UUID]) -> models.QuerySet:
        return model.objects.filter(conversation_id__in=conversation_ids)

    return rows


def _action_calls(conversation_ids: list[uuid.UUID]) -> models.QuerySet:
    """Calls in the conversation's turns, and those of its workflow runs (`turn_id` holds
    the workflow run's id there)."""
    runs = _workflow_run_ids(conversation_ids)
    return ActionCall.objects.filter(
        models.Q(conversation_id__in=conversation_ids) | models.Q(turn_id__in=runs)
    )


def _step_runs(conversation_ids: list[uuid.UUID]) -> models.QuerySet:
    return StepRun.objects.filter(run__conversation_id__in=conversation_ids)


# (name in counts, rows of these conversations); deleted in this order.
RECORDS: list[tuple[str, Callable[[list[uuid.UUID]], models.QuerySet]]] = [
    ("context_entries", _by_conversation(ContextEntry)),
    ("action_calls", _action_calls),
    ("approvals", _by_conversation(Approval)),
    ("agent_runs", _by_conversation(AgentRun)),
    ("workflow_steps", _step_runs),
    ("workflow_runs", _by_conversation(WorkflowRun)),
]


def records_delete(*, conversation_ids: Iterable[uuid.UUID]) -> dict[str, int]:
    """Delete every orchestrator row of these conversations; the count per kind."""
    ids = list(conversation_ids)
    counts = {name: 0 for name, _ in RECORDS}
    for chunk in _chunks(ids):
        for name, rows in RECORDS:
            deleted, _ = rows(chunk).delete()
            counts[name] += deleted
    return counts


def _when(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def records_export(*, conversation_id: uuid.UUID) -> dict[str, list[dict[str, Any]]]:
    """What the orchestrator stores about one conversation, as JSON-ready data."""
    ids = [conversation_id]
    return {
        "context": [
            {"key": e.key, "value": e.value, "updated_at": _when(e.updated_at)}
            for e in ContextEntry.objects.filter(conversation_id=conversation_id).order_by("key")
        ],
        "action_calls": [
            {
                "tool": c.tool,
                "agent": c.agent_slug,
                "arguments": c.arguments,
                "status": c.status,
                "output": c.output,
                "error": c.error,
                "approved_by": c.approved_by,
                "created_at": _when(c.created_at),
            }
            for c in _action_calls(ids).order_by("created_at", "id")
        ],
        "approvals": [
            {
                "tool": a.tool,
                "arguments": a.arguments,
                "summary": a.summary,
                "status": a.status,
                "decided_by": a.decided_by,
                "created_at": _when(a.created_at),
                "decided_at": _when(a.decided_at),
            }
            for a in Approval.objects.filter(conversation_id=conversation_id).order_by("id")
        ],
        "workflow_runs": [
            {
                "workflow": r.workflow_slug,
                "status": r.status,
                "input": r.input,
                "result": r.result,
                "steps": [
                    {"step": s.step_id, "agent": s.agent_slug, "output": s.output}
                    for s in r.steps.all()
                ],
                "created_at": _when(r.created_at),
            }
            for r in WorkflowRun.objects.filter(conversation_id=conversation_id)
            .prefetch_related("steps")
            .order_by("created_at", "id")
        ],
    }
