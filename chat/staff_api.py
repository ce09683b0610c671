"""The staff API under /api/staff/ (docs/staff-api.md): the inbox's reads and actions as
JSON, for scripts, bars and other tools of the support team.

Thin, like the inbox views: every read is a chat.inbox selector, every action one
chat.people service (an approval's decision: chat.staff_approvals; the same the inbox page
calls), and every refusal a plain sentence.
Auth: a personal token (`Authorization: Bearer sost_...`, chat.staff_tokens) or the staff
session of the inbox (CSRF-checked for unsafe methods). Every authenticated request counts
the member of staff as seen (people.staff_seen), as the inbox socket's frames do.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.urls import Resolver404, URLPattern, resolve
from django.views.decorators.csrf import csrf_exempt
from ninja import Field, NinjaAPI, Query, Schema, Status
from ninja.errors import AuthenticationError, AuthorizationError, HttpError, ValidationError
from ninja.parser import Parser
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf
from pydantic import StringConstraints, field_validator

from orchestrator.domain.enums import ApprovalStatus
from orchestrator.models import Approval

from . import audit, inbox, people, ratelimit, roles, selectors, staff_approvals, staff_tokens
from .enums import ConversationStatus, MessageStatus, Role
from .models import Attachment, Conversation, Message, StaffNote

logger = logging.getLogger(__name__)

PAGE_DEFAULT = 50
PAGE_MAX = 100
BODY_MAX_BYTES = 64 * 1024  # the largest body the API reads (text fields are 4,000 chars)

NOT_LOGGED_IN = (
    "Log in to the staff inbox, or send a personal token as 'Authorization: Bearer <token>' "
    "(manage.py staff_token USERNAME makes one)."
)
BAD_TOKEN = (
    "This token is not valid: it was revoked or mistyped. Make a new one with "
    "manage.py staff_token USERNAME."
)
NOT_STAFF = "The staff API is for active members of the support team."
BAD_CSRF = (
    "The CSRF check failed. With the staff session, send the csrftoken cookie's value in "
    "the X-CSRFToken header (or use a token instead of the session)."
)
NO_CONVERSATION = "There is no conversation with this id."
BAD_APPROVE = 'Send {"approve": true} to approve or {"approve": false} to decline.'
APPROVE_BOOLEAN = "This must be true or false (a JSON boolean)."
TOO_MANY = "Too many requests from your account (at most {rate}); wait a minute and try again."


# --- Auth -----------------------------------------------------------------------------


def _staff_only(user: AbstractBaseUser) -> AbstractBaseUser:
    if not (user.is_active and user.is_staff):
        raise AuthorizationError(403, NOT_STAFF)
    if not ratelimit.allow_staff_request(str(user.pk), rate=settings.SUPERORCH_STAFF_API_RATE):
        raise HttpError(429, TOO_MANY.format(rate=settings.SUPERORCH_STAFF_API_RATE))
    people.staff_seen(user=user)
    return user


class StaffToken(HttpBearer):
    """`Authorization: Bearer sost_...`: an active member of staff's personal token. A
    header with another scheme is not ours (the session may still authenticate)."""

    def __call__(self, request: HttpRequest) -> AbstractBaseUser | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self.authenticate(request, token.strip())

    def authenticate(self, request: HttpRequest, token: str) -> AbstractBaseUser:
        user = staff_tokens.staff_token_user(token=token)
        if user is None:
            raise AuthenticationError(401, BAD_TOKEN)
        return _staff_only(user)


class StaffSession(APIKeyCookie):
    """The inbox's Django session (an active is_staff user), CSRF-checked for unsafe
    methods (the check runs only once the session is known: no session, no CSRF error)."""

    param_name = settings.SESSION_COOKIE_NAME

    def _get_key(self, request: HttpRequest) -> str | None:
        return request.COOKIES.get(self.param_name)

    def authenticate(self, request: HttpRequest, key: str | None) -> AbstractBaseUser | None:
        user = request.user
        if not user.is_authenticated:
            return None
        _staff_only(user)
        if check_csrf(request) is not None:
            raise HttpError(403, BAD_CSRF)
        get_token(request)  # the csrftoken cookie comes with every answer to the session
        return user


# --- Errors as plain words -------------------------------------------------------------


class BodyTooLarge(Exception):
    pass


class StaffParser(Parser):
    def parse_body(self, request: HttpRequest) -> Any:
        if len(request.body) > BODY_MAX_BYTES:
            raise BodyTooLarge
        return super().parse_body(request)


api = NinjaAPI(
    title="Super Orchestrator staff API",
    version="1",
    description="The staff inbox's reads and actions (docs/staff-api.md).",
    auth=[StaffToken(), StaffSession()],
    parser=StaffParser(),
    docs_url=None,  # the schema is at openapi.json; no docs page (its scripts are inline)
    urls_namespace="staff_api",
)


def _error(status: int, words: str, fields: dict[str, str] | None = None) -> HttpResponse:
    body: dict[str, Any] = {"error": words}
    if fields:
        body["fields"] = fields
    return JsonResponse(body, status=status)


def _too_large() -> HttpResponse:
    return _error(413, f"The request body is too large (at most {BODY_MAX_BYTES} bytes).")


@api.exception_handler(BodyTooLarge)
def _body_too_large(request: HttpRequest, exc: BodyTooLarge) -> HttpResponse:
    return _too_large()


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if isinstance(exc.__cause__, BodyTooLarge):
        return _too_large()
    if exc.__cause__ is not None and exc.status_code == 400:  # the parser failed
        return _error(400, "The request body is not valid JSON (send a JSON object, in UTF-8).")
    words = exc.message
    if isinstance(exc, AuthenticationError) and words == "Unauthorized":  # no credentials
        words = NOT_LOGGED_IN
    response = _error(exc.status_code, words)
    if exc.status_code == 401:
        response["WWW-Authenticate"] = 'Bearer realm="staff"'
    if exc.status_code == 429:
        response["Retry-After"] = "60"
    return response


class BadBody(Exception):
    """A body the endpoint cannot take (400), with per-field words."""

    def __init__(self, words: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(words)
        self.words, self.fields = words, fields


@api.exception_handler(BadBody)
def _bad_body(request: HttpRequest, exc: BadBody) -> HttpResponse:
    return _error(400, exc.words, exc.fields)


@api.exception_handler(roles.RoleError)
def _not_your_role(request: HttpRequest, exc: roles.RoleError) -> HttpResponse:
    return _error(403, str(exc))


@api.exception_handler(people.PeopleError)
def _refused(request: HttpRequest, exc: people.PeopleError) -> HttpResponse:
    return _error(409, str(exc))


@api.exception_handler(inbox.SearchError)
def _bad_search(request: HttpRequest, exc: inbox.SearchError) -> HttpResponse:
    return _error(400, str(exc), {"q": str(exc)})


@api.exception_handler(RequestDataTooBig)
def _data_too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    return _too_large()


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception("staff API: %s %s failed", request.method, request.path)
    return _error(500, "Something went wrong on our side; the error is logged. Please try again.")


def _field_words(error: dict[str, Any]) -> str:
    """One pydantic error in plain words."""
    ctx = error.get("ctx") or {}
    kind = error.get("type", "")
    words = {
        "missing": "This is required.",
        "string_too_short": "This is empty.",
        "string_too_long": f"This is too long (at most {ctx.get('max_length')} characters).",
        "string_type": "This must be text (a JSON string).",
        "enum": f"Use one of {ctx.get('expected')}.",
        "uuid_parsing": "This is not a conversation id (a UUID such as "
        "3f2b8c1e-0d4a-4c7e-9a51-2b6f0e8d7c34).",
        "int_parsing": "This must be a whole number.",
        "int_type": "This must be a whole number.",
        "greater_than_equal": f"This must be at least {ctx.get('ge')}.",
        "less_than_equal": f"This must be at most {ctx.get('le')}.",
        "model_attributes_type": "The body must be a JSON object.",
        "dict_type": "The body must be a JSON object.",
        "extra_forbidden": "This is not a field of this request.",
    }.get(kind)
    if words is None:
        words = str(error.get("msg", "This is not valid.")).removeprefix("Value error, ")
    return words


def _field_name(loc: tuple | list) -> str:
    """`text` from ("body", "payload", "text"), `status` from ("query", "status")."""
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        return parts[2] if len(parts) > 2 else "body"
    return parts[1] if len(parts) > 1 else parts[0] if parts else "request"


@api.exception_handler(ValidationError)
def _invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    fields: dict[str, str] = {}
    for error in exc.errors:
        fields.setdefault(_field_name(error.get("loc", ())), _field_words(error))
    if fields.get("body") == "This is required.":
        fields["body"] = "The request needs a JSON body (an object)."
    summary = "; ".join(f"{name}: {words}" for name, words in fields.items())
    return _error(422, f"The request is not valid. {summary}", fields)


def json_not_allowed(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """django-ninja answers a wrong method with a plain-text 405: say it as JSON."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if response.status_code == 405 and "json" not in response.get("Content-Type", ""):
            allowed = response.get("Allow", "")
            answer = _error(405, f"This endpoint does not take {request.method}; use {allowed}.")
            answer["Allow"] = allowed
            return answer
        return response

    return wrapped


def urls() -> tuple[list[Any], str, str]:
    """The API's URL patterns, each view answering a wrong method in JSON."""
    patterns, app_name, namespace = api.urls
    for pattern in patterns:
        if isinstance(pattern, URLPattern):
            pattern.callback = json_not_allowed(pattern.callback)
    return patterns, app_name, namespace


@csrf_exempt
def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    """Any other path under /api/staff/: JSON, not the site's HTML 404 page."""
    if rest and not rest.endswith("/"):
        try:
            match = resolve(f"{request.path}/")
        except Resolver404:
            match = None
        if match is not None and match.func is not not_found:
            return _error(404, f"There is no such endpoint; did you mean {request.path}/ ?")
    return _error(404, "There is no such endpoint. The list is at /api/staff/openapi.json.")


# --- Shapes ---------------------------------------------------------------------------

Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=people.REPLY_CHARS)
]
NoteText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=people.NOTE_CHARS)
]
HandBackNote = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=people.NOTE_CHARS)
]


class ErrorOut(Schema):
    error: str = Field(description="What went wrong, in plain words.")
    fields: dict[str, str] | None = Field(None, description="Per field, for invalid input.")


class PersonOut(Schema):
    id: int
    username: str
    name: str


class SiteOut(Schema):
    key: str
    name: str


class ConversationRow(Schema):
    uuid: uuid.UUID
    status: ConversationStatus
    owner: PersonOut | None
    site: SiteOut
    user_name: str
    last_message: str | None
    last_role: Role | None
    unread: int = Field(description="The user's messages since the last reply.")
    waiting_since: datetime | None
    updated_at: datetime
    created_at: datetime


class ConversationPage(Schema):
    count: int = Field(description="How many conversations match (all pages).")
    limit: int
    offset: int
    items: list[ConversationRow]


class AttachmentOut(Schema):
    uuid: uuid.UUID
    name: str
    kind: str = Field(description="png, jpeg, gif, webp or pdf: what the file's bytes are.")
    content_type: str
    size: int = Field(description="Bytes.")
    width: int | None
    height: int | None
    url: str = Field(description="The download for staff (docs/attachments.md).")


class MessageOut(Schema):
    uuid: uuid.UUID
    role: Role
    author: str = Field(description="'User' (or the user's name), the agent's or staff's name.")
    agent: str | None = Field(description="The agent's slug ('staff' for a staff reply).")
    text: str
    status: MessageStatus
    created_at: datetime
    attachment: AttachmentOut | None = Field(
        None, description="The file a user message came with (docs/attachments.md)."
    )


class NoteOut(Schema):
    id: int
    author: PersonOut | None
    text: str
    created_at: datetime


class CsatOut(Schema):
    score: int
    comment: str
    rated_at: datetime | None


class UserOut(Schema):
    id: str
    name: str
    email: str
    verified: bool


class ConversationState(Schema):
    uuid: uuid.UUID
    status: ConversationStatus
    owner: PersonOut | None
    status_changed_at: datetime | None
    handback_note: str


class ConversationDetail(ConversationState):
    site: SiteOut
    user: UserOut
    contact_email: str
    csat: CsatOut | None
    created_at: datetime
    updated_at: datetime
    messages: list[MessageOut]
    notes: list[NoteOut]


class ReplyOut(Schema):
    message: MessageOut
    conversation: ConversationState


class ListQuery(Schema):
    status: ConversationStatus | None = Field(None, description="Only this status.")
    q: str = Field("", description="Words a message contains (at most 200 characters).")
    limit: int = Field(PAGE_DEFAULT, ge=1, le=PAGE_MAX)
    offset: int = Field(0, ge=0)


class ReplyIn(Schema):
    text: Text


class NoteIn(Schema):
    text: NoteText


class HandBackIn(Schema):
    note: HandBackNote = ""


class AssignIn(Schema):
    user: int | str = Field(
        description="The colleague: a username (a JSON string) or a user id (a JSON number)."
    )

    @field_validator("user", mode="before")
    @classmethod
    def _username_or_id(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
            raise ValueError("Give a colleague's username (a string) or user id (a number).")
        return value.strip() if isinstance(value, str) else value


class ApprovalOut(Schema):
    uuid: uuid.UUID
    conversation: uuid.UUID
    action: str = Field(description="The action's tool name, e.g. request_refund.")
    agent: str = Field(description="The agent whose call it is.")
    summary: str
    arguments: dict[str, Any]
    by: str = Field(description="Who decides: 'user' or 'staff' (staff may decide for the user).")
    status: ApprovalStatus
    expires_at: datetime
    decided_at: datetime | None
    decided_by: str = Field(description="The username of staff, or 'user'; empty until decided.")
    created_at: datetime


class ApprovalList(Schema):
    items: list[ApprovalOut] = Field(description="Pending and recent approvals, newest first.")


class ApprovalConflict(Schema):
    error: str = Field(description="Why nothing changed, in plain words.")
    outcome: ApprovalStatus = Field(description="How the approval had already ended.")
    approval: ApprovalOut


# --- Serialising ----------------------------------------------------------------------


def _person(user: AbstractBaseUser | None) -> dict | None:
    if user is None:
        return None
    return {"id": user.pk, "username": user.get_username(), "name": people.staff_name(user)}


def _site(conversation: Conversation) -> dict:
    return {"key": conversation.site.key, "name": conversation.site.name}


def _state(conversation: Conversation) -> dict:
    return {
        "uuid": conversation.uuid,
        "status": conversation.status,
        "owner": _person(conversation.owner),
        "status_changed_at": conversation.status_changed_at,
        "handback_note": conversation.handback_note,
    }


def _row(conversation: Conversation) -> dict:
    return {
        "uuid": conversation.uuid,
        "status": conversation.status,
        "owner": _person(conversation.owner),
        "site": _site(conversation),
        "user_name": conversation.user_name,
        "last_message": conversation.last_text,
        "last_role": conversation.last_role,
        "unread": conversation.unread,
        "waiting_since": conversation.wait_since,
        "updated_at": conversation.updated_at,
        "created_at": conversation.created_at,
    }


def _message(message: Message, user_name: str = "") -> dict:
    if message.role == Role.USER:
        author = user_name or "User"
    else:
        author = message.agent_name or ("Staff" if message.role == Role.STAFF else "Agent")
    return {
        "uuid": message.uuid,
        "role": message.role,
        "author": author,
        "agent": message.agent_slug or None,
        "text": message.text,
        "status": message.status,
        "created_at": message.created_at,
        "attachment": _attachment(getattr(message, "attachment", None)),
    }


def _attachment(attachment: Attachment | None) -> dict | None:
    if attachment is None:
        return None
    return {
        "uuid": attachment.uuid,
        "name": attachment.name,
        "kind": attachment.kind,
        "content_type": attachment.content_type,
        "size": attachment.size,
        "width": attachment.width,
        "height": attachment.height,
        "url": attachment.staff_url,
    }


def _note(note: StaffNote) -> dict:
    return {
        "id": note.pk,
        "author": _person(note.author),
        "text": note.text,
        "created_at": note.created_at,
    }


def _detail(conversation: Conversation) -> dict:
    csat = None
    if conversation.csat_score is not None:
        csat = {
            "score": conversation.csat_score,
            "comment": conversation.csat_comment,
            "rated_at": conversation.csat_at,
        }
    messages = inbox.conversation_transcript(conversation=conversation)
    return {
        **_state(conversation),
        "site": _site(conversation),
        "user": selectors.conversation_user(conversation),
        "contact_email": conversation.contact_email,
        "csat": csat,
        "created_at": conversation.created_at,
        "updated_at": conversation.updated_at,
        "messages": [_message(m, conversation.user_name) for m in messages],
        "notes": [_note(n) for n in inbox.conversation_notes(conversation=conversation)],
    }


def _approval(approval: Approval) -> dict:
    return {
        "uuid": approval.uuid,
        "conversation": approval.conversation_id,
        "action": approval.tool,
        "agent": approval.agent_slug,
        "summary": approval.summary,
        "arguments": approval.arguments or {},
        "by": approval.by,
        "status": approval.status,
        "expires_at": approval.expires_at,
        "decided_at": approval.decided_at,
        "decided_by": approval.decided_by,
        "created_at": approval.created_at,
    }


def _approve_of(request: HttpRequest) -> bool:
    """`approve` from the body: a JSON boolean, nothing else (not "yes", not 1)."""
    if len(request.body) > BODY_MAX_BYTES:
        raise BodyTooLarge
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise BadBody(
            "The request body is not valid JSON (send a JSON object, in UTF-8)."
        ) from None
    if not isinstance(body, dict) or not isinstance(body.get("approve"), bool):
        raise BadBody(BAD_APPROVE, {"approve": APPROVE_BOOLEAN})
    return body["approve"]


def _conversation(request: HttpRequest, key: uuid.UUID) -> Conversation:
    conversation = inbox.inbox_conversation(key=key, staff=request.auth)
    if conversation is None:
        raise HttpError(404, NO_CONVERSATION)
    return conversation


def _fresh(request: HttpRequest, conversation: Conversation) -> dict:
    """The conversation's state as it is after an action."""
    return _state(_conversation(request, conversation.uuid))


# --- Endpoints ------------------------------------------------------------------------

ERRORS = {401: ErrorOut, 403: ErrorOut, 422: ErrorOut}
ACTION_ERRORS = {**ERRORS, 400: ErrorOut, 404: ErrorOut, 409: ErrorOut, 413: ErrorOut}


@api.get(
    "/conversations/",
    response={200: ConversationPage, 400: ErrorOut, **ERRORS},
    summary="List conversations",
)
def conversation_list(request: HttpRequest, filters: Query[ListQuery]) -> dict:
    """Waiting for a person first (longest waiting first), then with a person, with the
    agents, resolved (each most recently active first), as in the inbox."""
    query = inbox.search_query(filters.q)
    status = filters.status or ""
    rows = inbox.inbox_rows(staff=request.auth, query=query, status=status)
    page = rows[filters.offset : filters.offset + filters.limit]
    return {
        "count": inbox.inbox_count(staff=request.auth, query=query, status=status),
        "limit": filters.limit,
        "offset": filters.offset,
        "items": [_row(c) for c in page],
    }


@api.get(
    "/conversations/{key}/",
    response={200: ConversationDetail, 404: ErrorOut, **ERRORS},
    summary="One conversation",
)
def conversation_detail(request: HttpRequest, key: uuid.UUID) -> dict:
    """The transcript (user, agent and staff messages, oldest first), status, owner,
    private notes, the user's rating and contact email."""
    conversation = _conversation(request, key)
    audit.staff_did(staff=request.auth, action=audit.Action.READ, conversation_id=conversation.uuid)
    return _detail(conversation)


@api.post(
    "/conversations/{key}/takeover/",
    response={200: ConversationState, **ACTION_ERRORS},
    summary="Take over",
)
def take_over(request: HttpRequest, key: uuid.UUID) -> dict:
    """You own it (`human`): no agent answers; a running agent turn stops. 409 when a
    colleague owns it."""
    conversation = people.staff_take_over(
        conversation=_conversation(request, key), staff=request.auth
    )
    return _fresh(request, conversation)


@api.post(
    "/conversations/{key}/reply/",
    response={201: ReplyOut, **ACTION_ERRORS},
    summary="Reply as staff",
)
def reply(request: HttpRequest, key: uuid.UUID, payload: ReplyIn) -> Status:
    """A staff message, live on the user's sockets. A conversation nobody owns becomes
    yours; a resolved one reopens (yours)."""
    conversation = _conversation(request, key)
    message = people.staff_reply(conversation=conversation, staff=request.auth, text=payload.text)
    return Status(
        201, {"message": _message(message), "conversation": _fresh(request, conversation)}
    )


@api.post(
    "/conversations/{key}/handback/",
    response={200: ConversationState, **ACTION_ERRORS},
    summary="Hand back to the agents",
)
def hand_back(request: HttpRequest, key: uuid.UUID, payload: HandBackIn | None = None) -> dict:
    """Back to the agents (`bot`), with an optional note they read as context."""
    note = payload.note if payload is not None else ""
    conversation = people.staff_hand_back(
        conversation=_conversation(request, key), staff=request.auth, note=note
    )
    return _fresh(request, conversation)


@api.post(
    "/conversations/{key}/resolve/",
    response={200: ConversationState, **ACTION_ERRORS},
    summary="Resolve",
)
def resolve_conversation(request: HttpRequest, key: uuid.UUID) -> dict:
    """Resolved (idempotent); the user may then rate it."""
    conversation = people.staff_resolve(
        conversation=_conversation(request, key), staff=request.auth
    )
    return _fresh(request, conversation)


@api.post(
    "/conversations/{key}/assign/",
    response={200: ConversationState, **ACTION_ERRORS},
    summary="Assign to a colleague",
)
def assign(request: HttpRequest, key: uuid.UUID, payload: AssignIn) -> dict:
    """The colleague owns it (`human`). `user`: a username (string) or a user id (number)."""
    conversation = _conversation(request, key)
    colleague = inbox.staff_user_by_ref(ref=payload.user)
    if colleague is None:
        words = f"There is no user {payload.user!r}."
        raise ValidationError([{"loc": ("body", "payload", "user"), "msg": words}])
    conversation = people.staff_assign(conversation=conversation, staff=request.auth, to=colleague)
    return _fresh(request, conversation)


@api.post(
    "/conversations/{key}/notes/",
    response={201: NoteOut, **ACTION_ERRORS},
    summary="Add a private note",
)
def note_add(request: HttpRequest, key: uuid.UUID, payload: NoteIn) -> Status:
    """A private note: never sent to the user, never given to a model."""
    note = people.staff_note_add(
        conversation=_conversation(request, key), staff=request.auth, text=payload.text
    )
    return Status(201, _note(note))


APPROVE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["approve"],
                    "properties": {"approve": {"type": "boolean"}},
                }
            }
        },
    }
}


@api.get(
    "/conversations/{key}/approvals/",
    response={200: ApprovalList, 404: ErrorOut, **ERRORS},
    summary="A conversation's approvals",
)
def approval_list(request: HttpRequest, key: uuid.UUID) -> dict:
    """Its pending and recent approvals (at most 20), newest first: what the agent wants
    to do, with which arguments, who decides, until when, and how it ended."""
    conversation = _conversation(request, key)
    return {
        "items": [_approval(a) for a in inbox.conversation_approvals(conversation=conversation)]
    }


@api.post(
    "/approvals/{approval}/",
    response={200: ApprovalOut, **ACTION_ERRORS, 409: ApprovalConflict},
    summary="Approve or decline",
    openapi_extra=APPROVE_BODY,
)
def approval_decide(request: HttpRequest, approval: str) -> Status | dict:
    """`{"approve": true}` or `{"approve": false}`: staff decide (also an approval the
    user decides, for them); the paused run resumes and the user hears the outcome. 409
    with the outcome when it was already decided or expired."""
    approve = _approve_of(request)
    decision = staff_approvals.staff_approval_decide(
        staff=request.auth, approval_id=approval, approve=approve
    )
    if decision.approval is None:
        raise HttpError(404, decision.words)
    body = _approval(decision.approval)
    if not decision.decided:
        return Status(
            409, {"error": decision.words, "outcome": decision.approval.status, "approval": body}
        )
    return body
