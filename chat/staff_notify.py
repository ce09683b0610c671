"""Telling the support team, outside the inbox page, that a conversation waits for a
person (docs/people.md, "Notifications"): an email to SUPERORCH_STAFF_NOTIFY_EMAILS and a
POST to SUPERORCH_STAFF_NOTIFY_WEBHOOK_URL, signed with SUPERORCH_STAFF_NOTIFY_WEBHOOK_SECRET
the way the alerts' webhooks are (orchestrator.alerts.webhook_post). Both are off unless
set.

`waiting_on_commit` is what chat.people calls when a conversation starts waiting: once the
transaction commits it queues the Celery task (chat.tasks) with the ConversationEvent's id;
without a broker (Celery eager: `make run`, the tests) the task runs on a thread instead,
so a slow mail server or webhook never holds the user's socket or a staff request. The
payload names the conversation, the reason and the source, and links to the inbox: never
the text of the user's messages. A failure is logged and recorded in the return value,
never raised.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import close_old_connections, connection, transaction
from django.urls import reverse

from orchestrator import queue
from orchestrator.alerts import webhook_post

from .enums import EscalationSource
from .models import ConversationEvent

logger = logging.getLogger(__name__)

NOTIFY_TASK = "chat.staff_notify_waiting"  # chat.tasks.staff_notify_waiting_task
WEBHOOK_EVENT = "conversation.waiting"


def notify_enabled() -> bool:
    return bool(
        settings.SUPERORCH_STAFF_NOTIFY_EMAILS or settings.SUPERORCH_STAFF_NOTIFY_WEBHOOK_URL
    )


def waiting_on_commit(*, event_id: int) -> None:
    """Once committed, tell the team about the conversation that started waiting (the
    ConversationEvent `event_id`); nothing at all when no email or webhook is set."""
    if notify_enabled():
        transaction.on_commit(lambda: _dispatch(event_id))


def _dispatch(event_id: int) -> None:
    try:
        if queue.eager():  # no broker: a thread, so the caller does not wait for the network
            threading.Thread(
                target=_in_thread, args=(event_id,), name="staff-notify", daemon=True
            ).start()
        else:
            queue.enqueue(NOTIFY_TASK, event_id)
    except Exception:  # telling the team must never break the user's request
        logger.exception("queueing the staff notification of event %s failed", event_id)


def _in_thread(event_id: int) -> None:
    close_old_connections()
    try:
        staff_notify_waiting(event_id=event_id)
    except Exception:
        logger.exception("the staff notification of event %s failed", event_id)
    finally:
        connection.close()


def public_url(path: str) -> str:
    """`path` on SUPERORCH_PUBLIC_URL (a path alone when it is not set)."""
    return f"{settings.SUPERORCH_PUBLIC_URL}{path}"


def waiting_payload(*, event: ConversationEvent) -> dict[str, Any]:
    """What the webhook receives (and the email says): no text of the user's messages."""
    conversation = event.conversation
    return {
        "event": WEBHOOK_EVENT,
        "conversation": str(conversation.uuid),
        "site": conversation.site.key,
        "source": event.source,
        "reason": event.reason,
        "asked_at": event.created_at.isoformat(),
        "url": public_url(reverse("staff:conversation", args=[conversation.uuid])),
    }


def _email_text(payload: dict[str, Any]) -> str:
    try:
        source = EscalationSource(payload["source"]).label
    except ValueError:
        source = payload["source"]
    lines = [
        f"A conversation on the site {payload['site']} is waiting for a person.",
        f"How: {source}.",
    ]
    if payload["reason"]:
        lines.append(f"Reason: {payload['reason']}")
    lines += ["", f"Open it in the inbox: {payload['url']}"]
    return "\n".join(lines)


def staff_notify_waiting(*, event_id: int) -> dict[str, str]:
    """Send the email and the webhook for one `waiting` event; returns what happened to
    each ("sent", "HTTP 200", "failed (...)"), for the log and the tests."""
    event = (
        ConversationEvent.objects.select_related("conversation__site").filter(pk=event_id).first()
    )
    if event is None:
        logger.warning("staff notification: no event %s", event_id)
        return {}
    payload = waiting_payload(event=event)
    done: dict[str, str] = {}
    recipients = [a.strip() for a in settings.SUPERORCH_STAFF_NOTIFY_EMAILS if a.strip()]
    if recipients:
        try:
            send_mail(
                "[Super Orchestrator] A conversation is waiting for a person",
                _email_text(payload),
                None,
                recipients,
            )
            done["email"] = "sent"
        except Exception as exc:
            logger.warning(
                "staff notification email for %s failed: %s", payload["conversation"], exc
            )
            done["email"] = f"failed ({type(exc).__name__})"
    url = settings.SUPERORCH_STAFF_NOTIFY_WEBHOOK_URL
    if url:
        done["webhook"] = webhook_post(url, settings.SUPERORCH_STAFF_NOTIFY_WEBHOOK_SECRET, payload)
    logger.info("staff told conversation %s waits: %s", payload["conversation"], done)
    return done
