"""Pages and the staff admin: the chat page, transcripts, runs, access control."""

import pytest
from django.urls import reverse

from chat.models import Conversation, Message, Turn, TurnEvent
from chat.services import conversation_open, site_ensure_default
from orchestrator.models import AgentProfile, AgentRun


@pytest.fixture
def conversation(team):
    site = site_ensure_default()
    conv, _, _ = conversation_open(site=site, token=None, user={}, context={})
    user = Message.objects.create(
        conversation=conv,
        role="user",
        text="I was charged twice",
        client_id="c1",
        status="answered",
    )
    turn = Turn.objects.create(conversation=conv, reply_to=user, status="ok", agent_slug="billing")
    TurnEvent.objects.create(
        turn=turn,
        kind="agent",
        data={
            "from": {"slug": "orchestrator", "name": "Super Orchestrator"},
            "to": {"slug": "billing", "name": "Billing"},
            "reason": "handoff",
        },
    )
    TurnEvent.objects.create(
        turn=turn, kind="tool", data={"agent": "billing", "tool": "search_knowledge", "call": "x"}
    )
    Message.objects.create(
        conversation=conv,
        role="assistant",
        agent_slug="billing",
        agent_name="Billing",
        turn=turn,
        text="See **Refund policy** <script>alert(1)</script> [x](javascript:alert(1))",
    )
    return conv


def test_chat_page_is_served_with_a_strict_csp(client, team):
    response = client.get("/")
    assert response.status_code == 200
    assert b'data-site="demo"' in response.content
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert b"Offline demo model" in response.content


def test_chat_page_only_reads_and_renders_without_the_default_site(client, db):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from chat.models import Site
    from chat.services import DEFAULT_GREETING

    Site.objects.filter(key="demo").delete()
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/")
    assert response.status_code == 200
    assert DEFAULT_GREETING.encode() in response.content.replace(b"&#x27;", b"'")
    assert b"I was charged twice for my subscription" in response.content
    assert not Site.objects.exists()
    writes = [q["sql"] for q in queries if not q["sql"].lstrip().upper().startswith("SELECT")]
    assert writes == []


def test_the_default_site_comes_from_a_data_migration(db):
    from importlib import import_module

    from django.apps import apps

    from chat.models import Site

    Site.objects.filter(key="demo").delete()
    migration = import_module("chat.migrations.0003_default_site")
    migration.create_default_site(apps, None)
    migration.create_default_site(apps, None)  # idempotent
    site = Site.objects.get(key="demo")
    assert site.greeting and site.suggestions


def test_healthz(client, db):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_admin_is_staff_only(client, django_user_model, conversation):
    url = reverse("admin:chat_conversation_change", args=[conversation.pk])
    assert client.get(url).status_code == 302  # to the login page
    user = django_user_model.objects.create_user("visitor", password="pw-123456")
    client.force_login(user)
    assert client.get(url).status_code == 302


def test_transcript_shows_agents_handoffs_tools_and_renders_markdown_safely(
    admin_client, conversation
):
    response = admin_client.get(reverse("admin:chat_conversation_change", args=[conversation.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Billing took over" in html and "search_knowledge" in html
    assert "<strong>Refund policy</strong>" in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown as text
    assert 'href="javascript' not in html


def test_registry_and_runs_admin_pages(admin_client, team):
    AgentRun.objects.create(
        agent_slug="billing",
        conversation_id="00000000-0000-0000-0000-000000000001",
        turn_id="00000000-0000-0000-0000-000000000002",
        provider="local",
        model_name="m",
        status="ok",
    )
    assert (
        admin_client.get(reverse("admin:orchestrator_agentprofile_changelist")).status_code == 200
    )
    billing = AgentProfile.objects.get(slug="billing")
    page = admin_client.get(reverse("admin:orchestrator_agentprofile_change", args=[billing.pk]))
    assert page.status_code == 200 and "routing example" in page.content.decode().lower()
    runs = admin_client.get(reverse("admin:orchestrator_agentrun_changelist") + "?status__exact=ok")
    assert runs.status_code == 200 and "billing" in runs.content.decode()
    assert (
        admin_client.get(reverse("admin:chat_conversation_changelist") + "?q=charged").status_code
        == 200
    )


def test_admin_rejects_a_second_enabled_orchestrator(admin_client, team):
    response = admin_client.post(
        reverse("admin:orchestrator_agentprofile_add"),
        {
            "name": "Another",
            "slug": "another",
            "role": "orchestrator",
            "enabled": "on",
            "instructions": "x",
            "handoff_description": "x",
            "model_provider": "auto",
            "examples-TOTAL_FORMS": "0",
            "examples-INITIAL_FORMS": "0",
            "articles-TOTAL_FORMS": "0",
            "articles-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "already has the role" in response.content.decode()
    assert not AgentProfile.objects.filter(slug="another").exists()


def test_conversation_tokens_are_stored_hashed(team):
    site = site_ensure_default()
    conv, token, resumed = conversation_open(site=site, token=None, user={}, context={})
    assert not resumed and len(token) >= 40
    stored = Conversation.objects.get(pk=conv.pk).token_hash
    assert token not in stored and len(stored) == 64
    again, same_token, resumed = conversation_open(site=site, token=token, user={}, context={})
    assert resumed and again.pk == conv.pk and same_token == token


def test_try_routing_shows_the_decision(admin_client, team):
    url = reverse("admin:orchestrator_try_routing")
    page = admin_client.get(url, {"q": "I was charged twice for my subscription"})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="route-agent">billing<' in html and "fast" in html
    partial = admin_client.get(url, {"q": "tell me a joke"}, headers={"HX-Request": "true"})
    body = partial.content.decode()
    assert "<html" not in body and ">general_assistant<" in body and "nothing fits" in body


def test_try_routing_is_staff_only(client, team):
    assert client.get(reverse("admin:orchestrator_try_routing")).status_code == 302
