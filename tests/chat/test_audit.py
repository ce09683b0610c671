"""The audit log: what staff do (chat/audit.py, append-only, no message text) and every
change of the registry, actions and sites (django-auditlog, with before/after and who)."""

from __future__ import annotations

import json

import pytest
from auditlog.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from chat import people, services
from chat.models import Message, StaffAuditEntry
from orchestrator.models import Action

pytestmark = pytest.mark.django_db
SECRET_TEXT = "my card number is 4111 1111 1111 1111"


def member(name: str, role: str):
    user = get_user_model().objects.create_user(name, password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def conversation(db):
    site = services.site_ensure_default()
    conversation, _, _ = services.conversation_open(site=site, token=None, user={}, context={})
    Message.objects.create(conversation=conversation, role="user", text=SECRET_TEXT)
    return conversation


def entries() -> list[tuple[str, str]]:
    return list(StaffAuditEntry.objects.order_by("id").values_list("actor_name", "action"))


def test_what_staff_do_is_logged_without_any_text(conversation):
    sam = member("sam", "Supervisor")
    kim = member("kim", "Support")
    people.staff_take_over(conversation=conversation, staff=sam)
    people.staff_reply(conversation=conversation, staff=sam, text="We are on it, " + SECRET_TEXT)
    people.staff_note_add(conversation=conversation, staff=sam, text="note: " + SECRET_TEXT)
    people.staff_assign(conversation=conversation, staff=sam, to=kim)
    people.staff_hand_back(conversation=conversation, staff=kim, note="back")
    people.staff_resolve(conversation=conversation, staff=kim)
    assert entries() == [
        ("sam", "take_over"),
        ("sam", "reply"),
        ("sam", "note"),
        ("sam", "assign"),
        ("kim", "hand_back"),
        ("kim", "resolve"),
    ]
    for entry in StaffAuditEntry.objects.all():
        assert entry.conversation_id == conversation.uuid
        assert "4111" not in json.dumps(entry.detail)
    assert StaffAuditEntry.objects.get(action="assign").detail == {"to": "kim"}


def test_a_refused_action_is_not_logged_as_done(conversation):
    viewer = member("vic", "Viewer")
    with pytest.raises(Exception, match="cannot take conversations over"):
        people.staff_take_over(conversation=conversation, staff=viewer)
    assert entries() == []


def test_reading_a_transcript_is_logged_once_per_opening(conversation):
    client = Client()
    client.force_login(member("vic", "Viewer"))
    url = reverse("staff:conversation", kwargs={"key": conversation.uuid})
    assert client.get(url).status_code == 200
    # The pane's live refreshes (htmx) are not new readings.
    assert client.get(url + "?part=transcript", HTTP_HX_REQUEST="true").status_code == 200
    admin_url = reverse("admin:chat_conversation_change", args=[conversation.pk])
    assert client.get(admin_url).status_code == 200
    assert entries() == [("vic", "read"), ("vic", "read")]
    assert StaffAuditEntry.objects.order_by("id").last().detail == {"where": "admin"}


def test_the_log_is_append_only(conversation):
    sam = member("sam", "Support")
    people.staff_take_over(conversation=conversation, staff=sam)
    entry = StaffAuditEntry.objects.get()
    entry.actor_name = "someone else"
    with pytest.raises(ValueError, match="append-only"):
        entry.save()
    with pytest.raises(ValueError, match="append-only"):
        entry.delete()
    assert StaffAuditEntry.objects.get().actor_name == "sam"


@pytest.mark.parametrize(
    ("role", "status"), [("Support", 403), ("Supervisor", 200), ("Admin", 200)]
)
def test_supervisors_and_admins_read_the_logs(role, status, conversation):
    client = Client()
    client.force_login(member("someone", role))
    assert client.get(reverse("admin:chat_staffauditentry_changelist")).status_code == status
    assert client.get(reverse("admin:auditlog_logentry_changelist")).status_code == status


def test_a_change_of_an_action_is_logged_with_before_after_and_who(team):
    admin = member("ada", "Admin")
    client = Client()
    client.force_login(admin)
    action = Action.objects.get(name="lookup_invoice")
    url = reverse("admin:orchestrator_action_change", args=[action.pk])
    page = client.get(url)
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None}
    data.update(
        {
            "description": "Look up an invoice (changed).",
            "signing_secret": action.signing_secret_id,
            "arguments_schema": json.dumps(action.arguments_schema),
            "headers": json.dumps(action.headers),
            "response_fields": json.dumps(action.response_fields),
            "examples": action.examples,
            "enabled": "on",
        }
    )
    data.pop("agents", None)
    response = client.post(url, data)
    assert response.status_code == 302, getattr(response, "context", {}) and [
        e for e in response.context["adminform"].form.errors.items()
    ]
    entry = LogEntry.objects.get_for_object(Action.objects.get(pk=action.pk)).latest("timestamp")
    assert entry.actor == admin
    before, after = entry.changes_dict["description"]
    assert after == "Look up an invoice (changed)." and before != after
