"""Staff answer in a conversation from the admin: the user sees it live, and messages
queued because no model could answer are answered by it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from chat import turns
from chat.models import Conversation, Message
from tests.chat.test_consumers import open_session, recv

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _no_turn_outlives_the_test():
    yield
    await turns.wait_idle(timeout=10)


async def test_a_staff_reply_reaches_the_chat_and_answers_the_queued_message(
    team, connect, django_user_model
):
    comm, ready = await open_session(connect)
    conversation = await Conversation.objects.aget(uuid=ready["conversation"])
    queued = await Message.objects.acreate(
        conversation=conversation,
        role="user",
        text="Is anyone there?",
        client_id="c-1",
        status="pending",
        retry_at=timezone.now() + timedelta(minutes=5),
    )
    admin = await sync_to_async(django_user_model.objects.create_superuser)(
        "grace", "grace@example.com", "pw", first_name="Grace"
    )
    client = Client()
    await sync_to_async(client.force_login)(admin)
    url = reverse("admin:chat_conversation_reply", args=[conversation.pk])
    page = await sync_to_async(client.get)(
        reverse("admin:chat_conversation_change", args=[conversation.pk])
    )
    assert url in page.content.decode()
    response = await sync_to_async(client.post)(url, {"text": "Hi, Grace here. Looking now."})
    assert response.status_code == 302

    # The reply makes the conversation Grace's (no agent answers after a person did)...
    status = await recv(comm)
    assert (status["type"], status["status"]) == ("conversation.status", "human")
    assert status["staff"] == {"name": "Grace"}
    # ...and reaches the chat as a staff message.
    frame = await recv(comm)
    assert frame["type"] == "message.done" and frame["turn"] is None
    message = frame["message"]
    assert message["role"] == "staff" and message["text"] == "Hi, Grace here. Looking now."
    assert message["agent"] == {"slug": "staff", "name": "Grace"}
    await queued.arefresh_from_db()
    assert (queued.status, queued.retry_at) == ("answered", None)


def test_an_empty_staff_reply_is_refused(admin_client, team):
    from chat.services import conversation_open, site_ensure_default

    conversation, _, _ = conversation_open(
        site=site_ensure_default(), token=None, user={}, context={}
    )
    url = reverse("admin:chat_conversation_reply", args=[conversation.pk])
    page = admin_client.post(url, {"text": "   "})
    assert page.status_code == 200 and "This field is required" in page.content.decode()
    assert not Message.objects.filter(role="staff").exists()
