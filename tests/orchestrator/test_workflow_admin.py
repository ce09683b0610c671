"""Staff manage workflows in the admin: validation, starting one for a conversation,
every step of a run, and the shared context store."""

from __future__ import annotations

import json
import uuid

import pytest
from django.urls import reverse

from chat.models import Conversation, Message, Site
from orchestrator.models import ContextEntry, Workflow, WorkflowRun

pytestmark = pytest.mark.django_db(transaction=True)


def _form(definition, **extra):
    return {
        "name": "Broken",
        "slug": "broken",
        "description": "x",
        "triggers": "",
        "enabled": "on",
        "definition": json.dumps(definition),
        **extra,
    }


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"steps": [{"id": "a", "agent": "nobody", "instruction": "x"}]}, "no enabled agent"),
        (
            {"steps": [{"id": "a", "agent": "billing", "instruction": "{steps.a}"}]},
            "would be a cycle",
        ),
        ({"steps": [{"id": "g", "parallel": []}]}, "a parallel group needs steps"),
    ],
)
def test_the_workflow_form_refuses_broken_definitions(admin_client, team, definition, message):
    page = admin_client.post(reverse("admin:orchestrator_workflow_add"), _form(definition))
    assert page.status_code == 200 and message in page.content.decode()
    assert not Workflow.objects.filter(slug="broken").exists()


def test_the_workflow_form_saves_a_valid_definition(admin_client, team):
    definition = {"steps": [{"id": "a", "agent": "billing", "instruction": "Check {input}"}]}
    page = admin_client.post(reverse("admin:orchestrator_workflow_add"), _form(definition))
    assert page.status_code == 302
    assert Workflow.objects.get(slug="broken").definition == definition


def test_staff_start_a_workflow_for_a_conversation_and_see_every_step(admin_client, team):
    conversation = Conversation.objects.create(
        site=Site.objects.get(key="demo"), token_hash=uuid.uuid4().hex
    )
    change = reverse("admin:chat_conversation_change", args=[conversation.pk])
    start = reverse("admin:chat_conversation_start_workflow", args=[conversation.pk])
    assert start in admin_client.get(change).content.decode()
    flow = Workflow.objects.get(slug="refund_request")
    page = admin_client.post(start, {"workflow": flow.pk, "input": "Refund my duplicate charge"})
    run = WorkflowRun.objects.get()
    assert page.status_code == 302
    assert page["Location"] == reverse("admin:orchestrator_workflowrun_change", args=[run.pk])
    assert run.status == "ok" and run.started_by == "staff"
    detail = admin_client.get(page["Location"]).content.decode()
    for step_id in ("invoice", "account", "decide", "explain"):
        assert step_id in detail
    assert Message.objects.filter(conversation=conversation, role="assistant").count() == 1
    assert "refund_request" in admin_client.get(change).content.decode()  # listed there
    # Bad input is a form error, not a crash.
    page = admin_client.post(start, {"workflow": "", "input": ""})
    assert page.status_code == 200 and "This field is required" in page.content.decode()


def test_the_start_page_is_staff_only(client, team):
    conversation = Conversation.objects.create(
        site=Site.objects.get(key="demo"), token_hash=uuid.uuid4().hex
    )
    url = reverse("admin:chat_conversation_start_workflow", args=[conversation.pk])
    assert client.get(url).status_code == 302  # to the login page


def test_context_entries_show_their_scope(admin_client, team):
    ContextEntry.objects.create(conversation_id=None, key="outage", value="EU")
    conv = uuid.uuid4()
    ContextEntry.objects.create(conversation_id=conv, key="plan", value="pro")
    page = admin_client.get(reverse("admin:orchestrator_contextentry_changelist")).content.decode()
    assert "global" in page and str(conv) in page
