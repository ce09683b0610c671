"""Privacy controls (docs/privacy.md): per-site retention, a user's data exported as JSON,
and erasure that leaves an audit record without content.

A conversation "hangs" the rest off it: its messages, attachments (their files leave
storage once the deletion commits: chat.attachments), turns, turn events, feedback, staff
notes and conversation events go with it (foreign keys), and the orchestrator's rows that
name it by UUID (shared context, action calls, approvals, agent runs, workflow runs) are
deleted by orchestrator.privacy. Users are found by the user id their site gave
(`Conversation.user_id`, verified or not): an anonymous visitor has none.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import Max, QuerySet
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from orchestrator import privacy as orchestrator_privacy

from . import audit, selectors
from .models import Attachment, Conversation, ErasureRecord, Message, Site

logger = logging.getLogger(__name__)

CHUNK = 200  # conversations deleted per transaction

NO_SITE = "There is no site with the key {key!r}."
NO_USER_ID = "Give the user id the site sends (anonymous visitors have none)."
NO_DATA = "Nothing is stored about user {user!r} on site {key!r}."
BUSY = (
    "An answer is being written in one of this user's conversations right now; try again "
    "in a minute."
)

# What Django's delete() reports, in the words of the counts.
LABELS = {
    "chat.Conversation": "conversations",
    "chat.Message": "messages",
    "chat.Turn": "turns",
    "chat.TurnEvent": "turn_events",
    "chat.Feedback": "feedback",
    "chat.ConversationEvent": "conversation_events",
    "chat.StaffNote": "staff_notes",
    "chat.Attachment": "attachments",
}


class PrivacyError(Exception):
    """A refusal in plain words."""


class NotFound(PrivacyError):
    pass


class Busy(PrivacyError):
    pass


def user_id_digest(user_id: str) -> str:
    return hashlib.sha256(user_id.encode("utf-8")).hexdigest()


# --- Deleting conversations with everything off them -----------------------------------


def _chunks(pks: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(pks), CHUNK):
        yield pks[start : start + CHUNK]


def conversations_delete(*, pks: list[int]) -> dict[str, int]:
    """Delete these conversations and every row about them; the count per kind."""
    counts: dict[str, int] = {label: 0 for label in LABELS.values()}
    for name, _ in orchestrator_privacy.RECORDS:
        counts[name] = 0
    for chunk in _chunks(pks):
        with transaction.atomic():
            rows = Conversation.objects.filter(pk__in=chunk)
            uuids = list(rows.values_list("uuid", flat=True))
            for name, n in orchestrator_privacy.records_delete(conversation_ids=uuids).items():
                counts[name] += n
            _, per_model = rows.delete()
            for label, n in per_model.items():
                key = LABELS.get(label, label.lower())
                counts[key] = counts.get(key, 0) + n
    return counts


# --- Retention -------------------------------------------------------------------------


def conversations_expired(*, site: Site, now: datetime) -> QuerySet[Conversation]:
    """The site's conversations whose last activity (the newest message, or the last
    change of the conversation) is older than its retention; none without one. A
    conversation whose answer is being written is left for the next purge."""
    if not site.retention_days:
        return Conversation.objects.none()
    cutoff = now - timedelta(days=site.retention_days)
    return (
        Conversation.objects.filter(site=site)
        .exclude(busy_until__gt=now)
        .annotate(
            last_activity=Greatest(
                "updated_at", Coalesce(Max("messages__created_at"), "updated_at")
            )
        )
        .filter(last_activity__lt=cutoff)
    )


def purge_expired(now: datetime | None = None) -> dict[str, Any]:
    """Delete every site's conversations past its retention (daily, Celery beat; or
    `manage.py purge_expired`). Returns {"sites": {key: conversations}, "counts": rows per
    kind, "conversations": total}."""
    now = now or timezone.now()
    per_site: dict[str, int] = {}
    counts: dict[str, int] = {}
    for site in Site.objects.filter(retention_days__gt=0).order_by("key"):
        pks = list(conversations_expired(site=site, now=now).values_list("pk", flat=True))
        if not pks:
            continue
        deleted = conversations_delete(pks=pks)
        per_site[site.key] = deleted.get("conversations", 0)
        for name, n in deleted.items():
            counts[name] = counts.get(name, 0) + n
        logger.info(
            "retention: deleted %d conversation(s) of site %s (older than %d days)",
            per_site[site.key],
            site.key,
            site.retention_days,
        )
    return {"conversations": sum(per_site.values()), "sites": per_site, "counts": counts}


# --- A user's data ---------------------------------------------------------------------


def _site(key: str) -> Site:
    site = Site.objects.filter(key=key).first()
    if site is None:
        raise NotFound(NO_SITE.format(key=key))
    return site


def user_conversations(*, site: Site, user_id: str) -> QuerySet[Conversation]:
    if not user_id:
        raise PrivacyError(NO_USER_ID)
    return Conversation.objects.filter(site=site, user_id=user_id).order_by("created_at", "id")


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _attachment(attachment: Attachment | None) -> dict[str, Any] | None:
    """An attachment's metadata and where its file is stored (the storage's name for it:
    under MEDIA_ROOT on the file system); the bytes themselves are not in the JSON."""
    if attachment is None:
        return None
    return {
        "uuid": str(attachment.uuid),
        "name": attachment.name,
        "kind": attachment.kind,
        "content_type": attachment.content_type,
        "size": attachment.size,
        "width": attachment.width,
        "height": attachment.height,
        "sha256": attachment.sha256,
        "storage_path": attachment.file.name,
        "created_at": _when(attachment.created_at),
    }


def _message(message: Message) -> dict[str, Any]:
    feedback = getattr(message, "feedback", None)
    return {
        "uuid": str(message.uuid),
        "role": message.role,
        "agent": message.agent_name or message.agent_slug,
        "text": message.text,
        "status": message.status,
        "created_at": _when(message.created_at),
        "attachment": _attachment(getattr(message, "attachment", None)),
        "feedback": None
        if feedback is None
        else {
            "value": feedback.value,
            "comment": feedback.comment,
            "at": _when(feedback.created_at),
        },
    }


def _conversation(conversation: Conversation) -> dict[str, Any]:
    messages = conversation.messages.select_related("feedback", "attachment").order_by("id")
    turn_events = [
        {"kind": event.kind, "data": event.data, "created_at": _when(event.created_at)}
        for turn in conversation.turns.prefetch_related("events").order_by("id")
        for event in turn.events.all()
    ]
    csat = None
    if conversation.csat_score is not None:
        csat = {
            "score": conversation.csat_score,
            "comment": conversation.csat_comment,
            "at": _when(conversation.csat_at),
        }
    return {
        "uuid": str(conversation.uuid),
        "created_at": _when(conversation.created_at),
        "updated_at": _when(conversation.updated_at),
        "status": conversation.status,
        "user": selectors.conversation_user(conversation),
        "contact_email": conversation.contact_email,
        "page_context": conversation.page_context,
        "csat": csat,
        "handback_note": conversation.handback_note,
        "messages": [_message(m) for m in messages],
        "turn_events": turn_events,
        "staff_notes": [
            {"text": note.text, "created_at": _when(note.created_at)}
            for note in conversation.staff_notes.order_by("id")
        ],
        "status_changes": [
            {
                "from": event.from_status,
                "to": event.to_status,
                "source": event.source,
                "reason": event.reason,
                "at": _when(event.created_at),
            }
            for event in conversation.events.order_by("id")
        ],
        **orchestrator_privacy.records_export(conversation_id=conversation.uuid),
    }


def user_data_export(
    *, site_key: str, user_id: str, staff: AbstractBaseUser | None = None
) -> dict[str, Any]:
    """Everything stored about the site's user, as JSON-ready data. NotFound for an
    unknown site or a user with no conversation. Audited (the id's digest only)."""
    site = _site(site_key)
    conversations = list(user_conversations(site=site, user_id=user_id))
    if not conversations:
        raise NotFound(NO_DATA.format(user=user_id, key=site_key))
    audit.staff_did(
        staff=staff, action=audit.Action.EXPORT, site=site.key,
        user_id_sha256=user_id_digest(user_id), conversations=len(conversations),
    )  # fmt: skip
    return {
        "site": {"key": site.key, "name": site.name},
        "user_id": user_id,
        "exported_at": _when(timezone.now()),
        "conversations": [_conversation(c) for c in conversations],
    }


def user_data_erase(
    *, site_key: str, user_id: str, by: str, staff: AbstractBaseUser | None = None
) -> ErasureRecord:
    """Delete the site's user's conversations and every row about them; the record of it
    (no content: the id's SHA-256, the counts, who, when). NotFound when nothing is
    stored; Busy while one of the conversations is being answered."""
    site = _site(site_key)
    conversations = user_conversations(site=site, user_id=user_id)
    pks = list(conversations.values_list("pk", flat=True))
    if not pks:
        raise NotFound(NO_DATA.format(user=user_id, key=site_key))
    if conversations.filter(busy_until__gt=timezone.now()).exists():
        raise Busy(BUSY)
    with transaction.atomic():
        counts = conversations_delete(pks=pks)
        audit.staff_did(
            staff=staff, action=audit.Action.ERASE, site=site.key,
            user_id_sha256=user_id_digest(user_id), conversations=len(pks),
        )  # fmt: skip
        record = ErasureRecord.objects.create(
            site=site,
            site_key=site.key,
            user_id_sha256=user_id_digest(user_id),
            counts=counts,
            by=by,
            staff=staff,
        )
    logger.info(
        "erasure: %d conversation(s) of a user of site %s by %s (record %d)",
        counts.get("conversations", 0),
        site.key,
        by,
        record.pk,
    )
    return record
