"""Calling an action on the site's systems: check, sign, send, read, record.

`action_call` is what an agent's tool runs (orchestrator/sdk/tools.py only adapts it):
the agent's permission is checked against the registry as it is now, the arguments
against the action's JSON Schema, then who must approve. A call that needs approval
is stopped by the SDK before it gets here (`needs_approval`; orchestrator.approvals
keeps the paused run); once approved, the resumed run calls it with its `Grant`: the
call keeps the id it had from the start (its ActionCall row, the X-Superorch-Call
header), and a call already made is answered from its record, never sent twice.
Every call, whatever happened, leaves one ActionCall row.

Secrets (the signing secret, header values) are read from the database at the moment
of the call, held by `_Prepared` (whose repr hides them), sent in headers and nowhere
else: never in the arguments, the record, a log line or what the model is shown (a
response that echoes one has it blanked out).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx2
from django.conf import settings

from . import selectors
from .aio import db_call
from .alerts import webhook_signature
from .domain import actions as rules
from .domain.enums import ActionCallStatus
from .domain.permissions import tool_refusal
from .models import Action, ActionCall, ActionSecret
from .signals import verified_user_requested

logger = logging.getLogger(__name__)
USER_AGENT = "superorch-actions/1"
# Tests swap in an httpx MockTransport; None: real connections.
http_transport: httpx2.AsyncBaseTransport | None = None


@dataclass(frozen=True)
class CallContext:
    """Who is calling, for which conversation and turn (or workflow run)."""

    agent_slug: str
    conversation_id: uuid.UUID | None = None
    turn_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Grant:
    """An approved call, as the resumed run's tool sees it (orchestrator.approvals)."""

    call_id: uuid.UUID
    approved_by: str


@dataclass(frozen=True)
class CallResult:
    status: ActionCallStatus
    output: str  # what the model is shown
    call_id: uuid.UUID | None = None

    @property
    def ok(self) -> bool:
        return self.status == ActionCallStatus.OK


@dataclass
class _Prepared:
    """A checked call, ready to send. Secrets live here only, and never print."""

    action_id: int
    name: str
    method: str
    url: str
    body: bytes
    timeout: float
    max_bytes: int
    fields: list[str]
    arguments: dict[str, Any]
    context: CallContext
    approval: str = ""
    user_id: str = ""
    signing_secret: str = field(default="", repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    call_id: uuid.UUID = field(default_factory=uuid.uuid4)

    @property
    def secrets(self) -> list[str]:
        return [self.signing_secret, *self.headers.values()]


def refusal_output(error: str) -> str:
    return json.dumps({"ok": False, "error": error}, ensure_ascii=False)


def parse_arguments(raw: str | dict[str, Any] | None) -> tuple[dict[str, Any] | None, str]:
    """The model's arguments as an object, or None and why not."""
    if isinstance(raw, dict):
        return raw, ""
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return None, "The arguments were not valid JSON."
    if not isinstance(value, dict):
        return None, "The arguments must be an object of named values."
    return value, ""


# --- recording ----------------------------------------------------------------------------


def action_call_record(
    *,
    tool: str,
    context: CallContext,
    status: ActionCallStatus,
    arguments: Any = None,
    action_id: int | None = None,
    error: str = "",
    output: str = "",
    http_status: int | None = None,
    duration_ms: int | None = None,
    approval: str = "",
    call_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """One row per call: made, refused, invalid, or waiting for approval. An approved
    call's row (made when it began to wait) is brought up to date."""
    if not isinstance(arguments, dict):
        arguments = {"_raw": str(arguments)[:2000]} if arguments else {}
    fields = {
        "action_id": action_id,
        "tool": tool[:100],
        "agent_slug": context.agent_slug,
        "conversation_id": context.conversation_id,
        "arguments": arguments,
        "status": status,
        "http_status": http_status,
        "error": error[:2000],
        "output": output[:4000],
        "duration_ms": duration_ms,
        "approval": approval,
    }
    row, _ = ActionCall.objects.update_or_create(
        uuid=call_id or uuid.uuid4(),
        defaults=fields,
        create_defaults={**fields, "turn_id": context.turn_id},
    )
    logger.info(
        "tool call %s by %s: %s%s",
        tool, context.agent_slug, status, f" (HTTP {http_status})" if http_status else "",
    )  # fmt: skip
    return row.uuid


def tool_refusal_record(*, tool: str, context: CallContext, reason: str, arguments: Any) -> str:
    """A tool call outside the agent's permissions: recorded, and the model's answer."""
    action_id = Action.objects.filter(name=tool).values_list("pk", flat=True).first()
    parsed, _ = parse_arguments(arguments) if isinstance(arguments, str | dict) else (None, "")
    action_call_record(
        tool=tool,
        context=context,
        status=ActionCallStatus.REFUSED,
        arguments=parsed if parsed is not None else arguments,
        action_id=action_id,
        error=reason,
    )
    return refusal_output(reason)


# --- preparing ----------------------------------------------------------------------------


def verified_user_id(conversation_id: uuid.UUID | None) -> str:
    """The conversation user's id if the site verified it, else "" (asked of the chat app)."""
    if conversation_id is None:
        return ""
    replies = verified_user_requested.send(sender=None, conversation_id=conversation_id)
    return next((r for _, r in replies if isinstance(r, str) and r), "")


def _refuse(
    name: str, context: CallContext, status: ActionCallStatus, error: str, **kw
) -> CallResult:
    call_id = action_call_record(tool=name, context=context, status=status, error=error, **kw)
    return CallResult(status, refusal_output(error), call_id)


def action_prepare(
    *, name: str, raw_arguments: str | dict[str, Any] | None, context: CallContext
) -> _Prepared | CallResult:
    """Check a call (permission now, arguments, host, secrets): the request to send, or
    the refusal already recorded."""
    team = selectors.team_snapshot()
    reason = tool_refusal(team, context.agent_slug, name)
    action = Action.objects.select_related("signing_secret").filter(name=name).first()
    if reason or action is None or not action.enabled:
        reason = reason or f"The action {name} is switched off."
        arguments, _ = parse_arguments(raw_arguments)
        return _refuse(
            name, context, ActionCallStatus.REFUSED, reason,
            arguments=arguments if arguments is not None else raw_arguments,
            action_id=action.pk if action else None,
        )  # fmt: skip
    spec = selectors.action_spec(action)
    arguments, problem = parse_arguments(raw_arguments)
    errors = [problem] if arguments is None else rules.argument_errors(spec, arguments)
    if errors:
        return _refuse(
            name, context, ActionCallStatus.INVALID, " ".join(errors),
            arguments=arguments if arguments is not None else raw_arguments, action_id=action.pk,
        )  # fmt: skip
    assert arguments is not None
    return _request(action, spec, arguments, context)


def _request(
    action: Action, spec: rules.ActionSpec, arguments: dict[str, Any], context: CallContext
) -> _Prepared | CallResult:
    record = {"arguments": arguments, "action_id": action.pk}
    url, _ = rules.render_url(action.url_template, arguments, action.method)
    refusal = rules.host_refusal(url, settings.SUPERORCH_ACTION_HOSTS)
    if refusal:
        return _refuse(action.name, context, ActionCallStatus.REFUSED, refusal, **record)
    secrets = _secrets(action)
    if secrets is None:
        error = "This action's stored secrets cannot be read; our team has to enter them again."
        return _refuse(action.name, context, ActionCallStatus.FAILED, error, **record)
    signing, headers = secrets
    body = b""
    if action.method in ("POST", "PUT", "PATCH"):
        body = json.dumps(arguments, separators=(",", ":"), ensure_ascii=False).encode()
    return _Prepared(
        action_id=action.pk,
        name=action.name,
        method=action.method,
        url=url,
        body=body,
        timeout=float(action.timeout_seconds),
        max_bytes=int(action.max_response_bytes),
        fields=[f for f in action.response_fields if isinstance(f, str)],
        arguments=arguments,
        context=context,
        approval=rules.approval_needed(spec, arguments),
        user_id=verified_user_id(context.conversation_id),
        signing_secret=signing,
        headers=headers,
    )


def _secrets(action: Action) -> tuple[str, dict[str, str]] | None:
    signing = action.signing_secret.reveal()
    names = [str(n) for n in (action.headers or {}).values()]
    stored = {s.name: s.reveal() for s in ActionSecret.objects.filter(name__in=names)}
    headers = {str(h): stored.get(str(n)) for h, n in (action.headers or {}).items()}
    if not signing or any(v is None for v in headers.values()):
        return None
    return signing, {h: v for h, v in headers.items() if v is not None}


# --- calling ------------------------------------------------------------------------------


async def action_call(
    *,
    name: str,
    raw_arguments: str | dict[str, Any] | None,
    context: CallContext,
    grant: Grant | None = None,
) -> CallResult:
    """What an agent's action tool does: check, then call, or refuse; always recorded.
    `grant`: the approval of this very call (a resumed run)."""
    if grant is not None:
        done = await db_call(_already_made, call_id=grant.call_id)
        if done is not None:  # a resume tried again: the call was made, it is not resent
            return done
    prepared = await db_call(
        action_prepare, name=name, raw_arguments=raw_arguments, context=context
    )
    if isinstance(prepared, CallResult):
        return prepared
    if prepared.approval and grant is not None:
        prepared.call_id = grant.call_id
        return await action_execute(prepared, approved_by=grant.approved_by)
    if prepared.approval:
        # Only a run that can pause asks (a chat turn); a workflow step cannot.
        error = rules.IN_WORKFLOW
        call_id = await db_call(
            action_call_record,
            tool=name,
            context=context,
            status=ActionCallStatus.NEEDS_APPROVAL,
            arguments=prepared.arguments,
            action_id=prepared.action_id,
            error=error,
            approval=prepared.approval,
            call_id=prepared.call_id,
        )
        return CallResult(ActionCallStatus.NEEDS_APPROVAL, refusal_output(error), call_id)
    return await action_execute(prepared)


async def action_execute(prepared: _Prepared, *, approved_by: str = "") -> CallResult:
    """Send a prepared call, read the answer within its limits, record it."""
    started = time.monotonic()
    status, http_status, output, error = await _send(prepared)
    duration = round((time.monotonic() - started) * 1000)
    call_id = await db_call(
        action_call_record,
        tool=prepared.name,
        context=prepared.context,
        status=status,
        arguments=prepared.arguments,
        action_id=prepared.action_id,
        error=error,
        output=output if status == ActionCallStatus.OK else "",
        http_status=http_status,
        duration_ms=duration,
        approval=prepared.approval,
        call_id=prepared.call_id,
    )
    if approved_by:
        await db_call(_set_approved_by, call_id=call_id, approved_by=approved_by)
    return CallResult(
        status, output if status == ActionCallStatus.OK else refusal_output(error), call_id
    )


def _set_approved_by(*, call_id: uuid.UUID, approved_by: str) -> None:
    ActionCall.objects.filter(uuid=call_id).update(approved_by=approved_by[:200])


def _already_made(*, call_id: uuid.UUID) -> CallResult | None:
    """An approved call that was already made (OK or failed), as the model saw it."""
    row = (
        ActionCall.objects.filter(
            uuid=call_id, status__in=(ActionCallStatus.OK, ActionCallStatus.FAILED)
        )
        .only("status", "output", "error")
        .first()
    )
    if row is None:
        return None
    status = ActionCallStatus(row.status)
    output = row.output if status == ActionCallStatus.OK else refusal_output(row.error)
    return CallResult(status, output, call_id)


def signed_headers(prepared: _Prepared, timestamp: str) -> dict[str, str]:
    headers = {
        **prepared.headers,
        "User-Agent": USER_AGENT,
        "Accept": "application/json",
        "X-Superorch-Action": prepared.name,
        "X-Superorch-Call": str(prepared.call_id),
        "X-Superorch-Timestamp": timestamp,
        "X-Superorch-Signature": webhook_signature(
            prepared.signing_secret, timestamp, prepared.body
        ),
    }
    if prepared.body:
        headers["Content-Type"] = "application/json"
    if prepared.user_id:
        headers["X-Superorch-User"] = prepared.user_id
    return headers


async def _send(prepared: _Prepared) -> tuple[ActionCallStatus, int | None, str, str]:
    """(status, HTTP status, what the model sees, the error in words)."""
    failed = ActionCallStatus.FAILED
    headers = signed_headers(prepared, str(int(time.time())))
    try:
        async with asyncio.timeout(prepared.timeout):
            code, raw = await _fetch(prepared, headers)
    except TimeoutError:
        return failed, None, "", f"The system did not answer within {prepared.timeout:g} seconds."
    except _TooLarge:
        limit = prepared.max_bytes
        return (
            failed,
            None,
            "",
            f"The system's answer was larger than this action allows ({limit} bytes).",
        )
    except httpx2.HTTPError as exc:
        logger.warning("action %s: %s", prepared.name, type(exc).__name__)
        return failed, None, "", "The system could not be reached. Please try again later."
    if not 200 <= code < 300:
        return failed, code, "", rules.http_error(code)
    text = rules.scrub(raw.decode("utf-8", errors="replace"), prepared.secrets)
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError:
        return failed, code, "", "The system's answer could not be read (it was not JSON)."
    shown = rules.visible(data, prepared.fields)
    title = f"The answer of the {prepared.name} action (HTTP {code})"
    return ActionCallStatus.OK, code, rules.data_block(title, shown), ""


class _TooLarge(Exception):
    pass


async def _fetch(prepared: _Prepared, headers: dict[str, str]) -> tuple[int, bytes]:
    timeout = httpx2.Timeout(prepared.timeout)
    async with (
        httpx2.AsyncClient(
            transport=http_transport, timeout=timeout, follow_redirects=False, trust_env=False
        ) as client,
        client.stream(
            prepared.method, prepared.url, headers=headers, content=prepared.body or None
        ) as response,
    ):
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > prepared.max_bytes:
            raise _TooLarge
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > prepared.max_bytes:
                raise _TooLarge
            chunks.append(chunk)
        return response.status_code, b"".join(chunks)
