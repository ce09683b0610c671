"""Staff roles (chat/roles.py): each role x each inbox action, staff API endpoint and admin
page, allowed or refused in plain words; approvals within Support's limit."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from chat import roles, services
from chat.models import Conversation, Message
from orchestrator.models import Action, Approval

pytestmark = pytest.mark.django_db
ROLES = ["Viewer", "Support", "Supervisor", "Admin"]
# action -> (inbox url name, API path, body, the lowest role allowed)
ACTIONS = {
    "takeover": ("staff:takeover", "takeover/", None, "Support"),
    "reply": ("staff:reply", "reply/", {"text": "Hello from the team"}, "Support"),
    "notes": ("staff:notes", "notes/", {"text": "a private note"}, "Support"),
    "resolve": ("staff:resolve", "resolve/", None, "Support"),
    "assign": ("staff:assign", "assign/", "colleague", "Supervisor"),
}


def member(name: str, role: str | None, **extra):
    user = get_user_model().objects.create_user(name, password="x", is_staff=True, **extra)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


def allowed(role: str, lowest: str) -> bool:
    return ROLES.index(role) >= ROLES.index(lowest)


@pytest.fixture
def conversation(db):
    site = services.site_ensure_default()
    conversation, _, _ = services.conversation_open(site=site, token=None, user={}, context={})
    Message.objects.create(conversation=conversation, role="user", text="help me please")
    return conversation


def test_the_migration_made_the_four_groups_each_with_more_than_the_last():
    perms = {
        g.name: set(g.permissions.values_list("codename", flat=True)) for g in Group.objects.all()
    }
    assert set(ROLES) <= set(perms)
    assert "view_conversation" in perms["Viewer"] and "change_conversation" not in perms["Viewer"]
    assert perms["Viewer"] < perms["Support"] < perms["Supervisor"] < perms["Admin"]
    assert "change_cannedreply" in perms["Supervisor"] and "change_site" not in perms["Supervisor"]
    assert {"change_site", "change_action", "change_actionsecret"} <= perms["Admin"]


def test_who_has_which_role(settings):
    assert roles.role_of(member("v", "Viewer")) == roles.Role.VIEWER
    assert roles.role_of(member("two", "Viewer")) == roles.Role.VIEWER
    both = member("both", "Viewer")
    both.groups.add(Group.objects.get(name="Supervisor"))
    assert roles.role_of(both) == roles.Role.SUPERVISOR  # the highest of its groups
    assert roles.role_of(member("root", None, is_superuser=True)) == roles.Role.ADMIN
    assert roles.role_of(member("plain", None)) == roles.Role.SUPPORT  # the default
    settings.SUPERORCH_DEFAULT_STAFF_ROLE = "viewer"
    assert roles.role_of(member("plain2", None)) == roles.Role.VIEWER
    user = get_user_model().objects.create_user("customer", password="x")
    assert roles.role_of(user) is None


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(ACTIONS))
def test_each_role_in_the_inbox(role, action, conversation):
    name, _, body, lowest = ACTIONS[action]
    user = member("staff", role)
    colleague = member("colleague", "Support")
    client = Client()
    client.force_login(user)
    data = {"to": colleague.pk} if body == "colleague" else (body or {})
    response = client.post(reverse(name, kwargs={"key": conversation.uuid}), data, follow=True)
    words = [str(m) for m in response.context["messages"]]
    refused = [w for w in words if "needs the" in w]
    if allowed(role, lowest):
        assert not refused, words
    else:
        assert refused == [
            f"Your role ({role}) cannot {roles.Can(refused_what(action))}: that needs the "
            f"{lowest} role or above."
        ]
    # Every role reads the conversation.
    page = client.get(reverse("staff:conversation", kwargs={"key": conversation.uuid}))
    assert page.status_code == 200


def refused_what(action: str) -> str:
    return {
        "takeover": roles.Can.TAKE_OVER,
        "reply": roles.Can.REPLY,
        "notes": roles.Can.NOTE,
        "resolve": roles.Can.RESOLVE,
        "assign": roles.Can.ASSIGN,
    }[action].value


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(ACTIONS))
def test_each_role_in_the_staff_api(role, action, conversation):
    _, path, body, lowest = ACTIONS[action]
    user = member("staff", role)
    colleague = member("colleague", "Support")
    out = StringIO()
    call_command("staff_token", user.get_username(), stdout=out, stderr=StringIO())
    client = Client(HTTP_AUTHORIZATION=f"Bearer {out.getvalue().strip()}")
    data = {"user": colleague.get_username()} if body == "colleague" else body
    response = client.post(
        f"/api/staff/conversations/{conversation.uuid}/{path}",
        json.dumps(data) if data is not None else b"",
        content_type="application/json",
    )
    if allowed(role, lowest):
        assert response.status_code != 403, response.content
    else:
        assert response.status_code == 403
        assert response.json()["error"].startswith(f"Your role ({role}) cannot ")
    listed = client.get("/api/staff/conversations/")
    assert listed.status_code == 200


def approval(conversation: Conversation, amount: str) -> Approval:
    action = Action.objects.filter(name="request_refund").first()
    return Approval.objects.create(
        conversation_id=conversation.uuid,
        turn_id=conversation.uuid,
        action=action,
        tool="request_refund",
        agent_slug="billing",
        start_agent="billing",
        tool_call_id="call_1",
        arguments={"invoice": "ACME-2024-000124", "amount": amount},
        summary=f"Refund EUR {amount}",
        by="staff",
        run_state="{}",
        expires_at="2099-01-01T00:00:00Z",
    )


@pytest.mark.parametrize(
    ("role", "amount", "decided"),
    [
        ("Viewer", "240.00", False),
        ("Support", "240.00", True),
        ("Support", "800.00", False),
        ("Supervisor", "800.00", True),
        ("Admin", "5000.00", True),
    ],
)
def test_approvals_within_the_roles_limits(team, role, amount, decided, conversation, settings):
    settings.SUPERORCH_SUPPORT_APPROVAL_LIMIT = "500"
    pending = approval(conversation, amount)
    client = Client()
    client.force_login(member("staff", role))
    url = reverse("staff:approval", kwargs={"key": conversation.uuid, "approval": pending.uuid})
    response = client.post(url, {"decision": "approve"}, follow=True)
    words = [str(m) for m in response.context["messages"]]
    pending.refresh_from_db()
    assert (pending.status == "approved") is decided, words
    if not decided:
        assert pending.status == "pending"
        assert any("Viewer" in w or "Supervisor" in w for w in words), words


@pytest.mark.parametrize(
    ("role", "url", "status"),
    [
        ("Viewer", "admin:chat_conversation_changelist", 200),
        ("Viewer", "admin:chat_site_changelist", 403),
        ("Viewer", "admin:chat_cannedreply_add", 403),
        ("Support", "admin:chat_cannedreply_add", 403),
        ("Supervisor", "admin:chat_cannedreply_add", 200),
        ("Supervisor", "admin:orchestrator_action_changelist", 403),
        ("Admin", "admin:orchestrator_action_changelist", 200),
        ("Admin", "admin:chat_site_changelist", 200),
        ("Viewer", "admin:orchestrator_dashboard", 200),
    ],
)
def test_the_admin_follows_the_roles(team, role, url, status):
    client = Client()
    client.force_login(member("staff", role))
    assert client.get(reverse(url)).status_code == status
