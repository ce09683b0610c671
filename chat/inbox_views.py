"""The staff inbox under /staff/ (docs/people.md, "The staff inbox"): thin views over the
selectors in chat.inbox and the services in chat.people. Logged-in staff only: anyone else
is sent to the login page, a logged-in user who is not staff gets 403. Every POST is
CSRF-checked (the middleware) and answered with a redirect to the conversation, the
outcome in words (django.contrib.messages)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from functools import wraps

from django import forms
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST, require_safe

from orchestrator.domain.enums import ApprovalPolicy

from . import audit, inbox, people, roles, staff_approvals
from .enums import ConversationStatus, Role
from .models import Conversation
from .rendering import render_message

REPLY_CHARS = people.REPLY_CHARS


def staff_required(view: Callable) -> Callable:
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if not (user.is_active and user.is_staff):
            raise PermissionDenied("The inbox is for the support team.")
        return view(request, *args, **kwargs)

    return wrapped


class ReplyForm(forms.Form):
    text = forms.CharField(max_length=REPLY_CHARS, strip=True)


class NoteForm(forms.Form):
    text = forms.CharField(max_length=people.NOTE_CHARS, strip=True)


class HandBackForm(forms.Form):
    note = forms.CharField(max_length=people.NOTE_CHARS, strip=True, required=False)


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("decline", "Decline")])


class AssignForm(forms.Form):
    to = forms.ModelChoiceField(
        queryset=inbox.staff_colleagues(),
        error_messages={"invalid_choice": "Pick a member of staff from the list."},
    )


def _conversation(request: HttpRequest, key: uuid.UUID) -> Conversation:
    conversation = inbox.inbox_conversation(key=key, staff=request.user)
    if conversation is None:
        raise Http404("No such conversation.")
    return conversation


def _list_context(request: HttpRequest, current: Conversation | None = None) -> tuple[dict, int]:
    context = {
        "query": "",
        "status": "",
        "statuses": ConversationStatus.choices(),
        "current": current,
        "max_query": inbox.QUERY_MAX_CHARS,
    }
    try:
        context["query"] = inbox.search_query(request.GET.get("q", ""))
        context["status"] = inbox.status_filter(request.GET.get("status", ""))
    except inbox.SearchError as exc:
        context["error"] = str(exc)
        return context, 400
    context["conversations"] = inbox.with_previews(
        inbox.inbox_conversations(
            staff=request.user, query=context["query"], status=context["status"]
        )
    )
    context["waiting"] = inbox.waiting_count(staff=request.user)
    context["approvals_needed"] = inbox.approvals_needed_count(staff=request.user)
    return context, 200


def _page_context(request: HttpRequest) -> dict:
    """What every full page shows besides its content: who is online."""
    return {"online": people.staff_online()}


@require_safe
@staff_required
def inbox_page(request: HttpRequest) -> HttpResponse:
    context, status = _list_context(request)
    if request.htmx:
        return render(request, "staff/_list.html", context, status=status)
    return render(request, "staff/inbox.html", {**context, **_page_context(request)}, status=status)


@require_safe
@staff_required
def presence(request: HttpRequest) -> HttpResponse:
    """Who is online (the header's list; htmx re-reads it when someone comes online and
    each minute, so someone no longer seen drops off)."""
    return render(request, "staff/_presence.html", _page_context(request))


def _transcript(conversation: Conversation) -> list[dict]:
    return [
        {
            "message": m,
            "who": {Role.USER: "User", Role.STAFF: m.agent_name or "Staff"}.get(
                m.role, m.agent_name or "Agent"
            ),
            "html": mark_safe(render_message(m.text)),  # noqa: S308 - nh3-cleaned
            "attachment": getattr(m, "attachment", None),
        }
        for m in inbox.conversation_transcript(conversation=conversation)
    ]


def _approvals(conversation: Conversation) -> list[dict]:
    """The approvals waiting, each with its arguments as (name, value) pairs."""
    return [
        {
            "approval": a,
            "arguments": [
                (name, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
                for name, value in (a.arguments or {}).items()
            ],
            "for_user": a.by != ApprovalPolicy.STAFF,
        }
        for a in inbox.conversation_approvals_pending(conversation=conversation)
    ]


@require_safe
@staff_required
def conversation_page(request: HttpRequest, key: uuid.UUID) -> HttpResponse:
    conversation = _conversation(request, key)
    part = request.GET.get("part", "")
    context = {
        "conversation": conversation,
        "approvals": _approvals(conversation),
        "transcript": _transcript(conversation),
        "notes": inbox.conversation_notes(conversation=conversation),
        "colleagues": inbox.staff_colleagues(site=conversation.site).exclude(
            pk=conversation.owner_id or 0
        ),
        "reply_chars": REPLY_CHARS,
        "note_chars": people.NOTE_CHARS,
    }
    if part in ("transcript", "actions", "approvals") and request.htmx:
        return render(request, f"staff/_{part}.html", context)
    # The page itself, not its live refreshes: one entry per time it is opened.
    audit.staff_did(staff=request.user, action=audit.Action.READ, conversation_id=conversation.uuid)
    list_context, _ = _list_context(request, current=conversation)
    page = {"canned": inbox.canned_replies(), **_page_context(request)}
    return render(request, "staff/conversation.html", {**context, **list_context, **page})


def _act(request: HttpRequest, key: uuid.UUID, form_class, action, done: str) -> HttpResponse:
    """Run one service with the validated form; tell the outcome in words."""
    conversation = _conversation(request, key)
    form = form_class(request.POST) if form_class else None
    if form is not None and not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
    else:
        data = form.cleaned_data if form is not None else {}
        try:
            action(conversation=conversation, staff=request.user, **data)
        except (people.PeopleError, roles.RoleError) as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, done)
    return redirect("staff:conversation", key=conversation.uuid)


@require_POST
@staff_required
def take_over(request: HttpRequest, key: uuid.UUID) -> HttpResponse:
    return _act(request, key, None, people.staff_take_over, "You have taken the conversation over.")


@require_POST
@staff_required
def reply(request: HttpRequest, key: uuid.UUID) -> HttpResponse:
    return _act(request, key, ReplyForm, people.staff_reply, "Your reply was sent.")


@require_POST
@staff_required
def hand_back(request: HttpRequest, key: uuid.UUID) -> HttpResponse:
    return _act(request, key, HandBackForm, people.staff_hand_back, "The agents answer it again.")


@require_POST
@staff_required
def resolve(request: HttpRequest, key: uuid.UUID) -> HttpResponse:
    return _act(request, key, None, people.staff_resolve, "The conversation is resolved.")


@require_POST
@staff_required
def assign(request: HttpRequest, key: uuid.UUID) -> HttpResponse:
    return _act(request, key, AssignForm, people.staff_assign, "The conversation was assigned.")


@require_POST
@staff_required
def note_add(request: HttpRequest, key: uuid.UUID) -> HttpResponse:
    return _act(request, key, NoteForm, people.staff_note_add, "The note was added.")


@require_POST
@staff_required
def approval_decide(request: HttpRequest, key: uuid.UUID, approval: uuid.UUID) -> HttpResponse:
    """Approve or Decline (also for the user, "Decide for the user"); the outcome, or why
    nothing changed, in words."""
    conversation = _conversation(request, key)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose Approve or Decline.")
    else:
        try:
            decision = staff_approvals.staff_approval_decide(
                staff=request.user,
                approval_id=approval,
                approve=form.cleaned_data["decision"] == "approve",
                conversation=conversation,
            )
        except roles.RoleError as exc:
            messages.error(request, str(exc))
        else:
            (messages.success if decision.decided else messages.error)(request, decision.words)
    return redirect("staff:conversation", key=conversation.uuid)
