"""Staff decide approvals (docs/people.md, "Approvals in the inbox"; docs/staff-api.md):
on the real consumer, the demo backend and the offline model, a refund of EUR 240 waits
for staff; the inbox shows it with its arguments and marks the conversation; staff approve
in the inbox and the user's socket hears it, the resumed turn refunds once; staff decline
through the API and nothing is refunded; not staff, twice, unknown and bad bodies are
refused in plain words; the admin lists approvals and the transcript shows them."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from chat import people, turns
from chat.models import Conversation, Message, Turn
from orchestrator.models import ActionCall, Approval
from tests.chat.test_approvals import BIG_REFUND, REFUND, ask_refund, replies, until_turn_done
from tests.support.demo import refunds

pytestmark = pytest.mark.django_db(transaction=True)
run = sync_to_async
TIMEOUT = 15
API = "/api/staff"


@pytest.fixture(autouse=True)
async def _no_turn_outlives_the_test():
    yield
    await turns.wait_idle(timeout=15)


@pytest.fixture
def sam(transactional_db):
    return get_user_model().objects.create_user(
        "sam", password="x", is_staff=True, is_superuser=True, first_name="Sam"
    )


@pytest.fixture
def bob(transactional_db):
    return get_user_model().objects.create_user("bob", password="x", first_name="Bob")


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page(user, conversation: str) -> tuple[int, str]:
    response = logged_in(user).get(f"/staff/c/{conversation}/")
    return response.status_code, response.content.decode()


def decide_in_inbox(user, conversation: str, approval: str, decision: str) -> tuple[int, str]:
    """POST the button; the redirected page's words (the outcome)."""
    client = logged_in(user)
    response = client.post(
        f"/staff/c/{conversation}/approvals/{approval}/", {"decision": decision}, follow=True
    )
    return response.status_code, response.content.decode()


def api_post(user, path: str, body) -> tuple[int, dict]:
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    response = logged_in_csrf(user).post(f"{API}{path}", data, content_type="application/json")
    return response.status_code, json.loads(response.content)


def api_get(user, path: str) -> tuple[int, dict]:
    response = logged_in(user).get(f"{API}{path}")
    return response.status_code, json.loads(response.content)


def logged_in_csrf(user) -> Client:
    """The staff session with its CSRF token, as the inbox page sends it."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    listing = client.get(f"{API}/conversations/")
    if "csrftoken" in listing.cookies:  # not for a session that is not staff
        client.defaults["HTTP_X_CSRFTOKEN"] = listing.cookies["csrftoken"].value
    return client


async def staff_refund(connect):
    comm, ready, frames, request = await ask_refund(connect, BIG_REFUND)
    assert request["by"] == "staff" and frames[-1]["status"] == "paused"
    return comm, ready["conversation"], request["approval"]


async def test_the_inbox_shows_the_approval_with_its_arguments_and_marks_the_row(
    connect, demo_backend, sam
):
    comm, conversation, approval = await staff_refund(connect)
    status, html = await run(page)(sam, conversation)
    assert status == 200
    assert 'id="approvals"' in html and f'data-approval="{approval}"' in html
    assert "Refund EUR 240.00 for invoice ACME-2024-000124" in html
    assert "<code>request_refund</code>" in html and "our team decides" in html
    arguments = (await Approval.objects.aget(uuid=approval)).arguments
    assert arguments  # each argument as a small name: value list
    for name, value in arguments.items():
        assert f"<dt>{name}</dt><dd>{value}</dd>" in html
    assert "Decide for the user" not in html
    assert html.count(f"/staff/c/{conversation}/approvals/{approval}/") == 2  # Approve, Decline
    # The list: marked, and first (needing attention) though it is with the agents.
    list_html = (await run(lambda: logged_in(sam).get("/staff/").content.decode())()).split(
        'class="so-inbox__rows"'
    )[1]
    first_row = list_html.split("</li>")[0]
    assert f'data-conversation="{conversation}"' in first_row and "Approval needed" in first_row
    assert (
        "1 approval needed" in await run(lambda: logged_in(sam).get("/staff/").content.decode())()
    )
    await comm.disconnect()


async def test_staff_approve_in_the_inbox_and_the_resumed_turn_refunds_once(
    connect, demo_backend, sam
):
    comm, conversation, approval = await staff_refund(connect)
    status, html = await run(decide_in_inbox)(sam, conversation, approval, "approve")
    assert status == 200 and "Approved: the agent carries on and tells the user." in html
    resolved = await comm.receive_json_from(timeout=TIMEOUT)
    assert resolved == {"type": "approval.resolved", "approval": approval, "outcome": "approved"}
    frames = await until_turn_done(comm)
    assert frames[-1]["status"] == "ok"
    (reply,) = replies(frames)
    assert reply.startswith("Done. Here's what the system recorded")
    assert "- Amount: 240.00" in reply
    assert len(refunds(demo_backend)) == 1
    call = await ActionCall.objects.aget(tool="request_refund")
    assert (call.status, call.approved_by) == ("ok", "sam")
    stored = await Approval.objects.aget(uuid=approval)
    assert (stored.status, stored.decided_by) == ("approved", "sam")
    # Twice: nothing new, said in plain words; the pane no longer offers it.
    status, html = await run(decide_in_inbox)(sam, conversation, approval, "decline")
    assert "This was already approved." in html and f'data-approval="{approval}"' not in html
    await turns.wait_idle(timeout=10)
    assert await comm.receive_nothing(timeout=0.3)
    assert len(refunds(demo_backend)) == 1
    assert await Turn.objects.acount() == 2
    assert (await Message.objects.aget(role="user")).status == "answered"
    await comm.disconnect()


async def test_staff_decline_through_the_api_and_nothing_is_refunded(connect, demo_backend, sam):
    comm, conversation, approval = await staff_refund(connect)
    status, listed = await run(api_get)(sam, f"/conversations/{conversation}/approvals/")
    assert status == 200
    (item,) = listed["items"]
    assert (item["uuid"], item["status"], item["by"], item["action"]) == (
        approval,
        "pending",
        "staff",
        "request_refund",
    )
    assert item["arguments"] and item["summary"].startswith("Refund EUR 240.00")
    status, body = await run(api_post)(sam, f"/approvals/{approval}/", {"approve": False})
    assert status == 200 and body["status"] == "declined" and body["decided_by"] == "sam"
    assert (await comm.receive_json_from(timeout=TIMEOUT))["outcome"] == "declined"
    frames = await until_turn_done(comm)
    (reply,) = replies(frames)
    assert "nothing was changed" in reply or "nothing was done" in reply
    assert refunds(demo_backend) == []
    assert (await ActionCall.objects.aget(tool="request_refund")).status == "declined"
    # Again: 409 with the outcome; the list shows it decided.
    status, body = await run(api_post)(sam, f"/approvals/{approval}/", {"approve": True})
    assert status == 409
    assert body["error"] == "This was already declined." and body["outcome"] == "declined"
    assert body["approval"]["uuid"] == approval
    status, listed = await run(api_get)(sam, f"/conversations/{conversation}/approvals/")
    assert [i["status"] for i in listed["items"]] == ["declined"]
    assert refunds(demo_backend) == []
    await comm.disconnect()


async def test_staff_may_decide_for_the_user(connect, demo_backend, sam):
    comm, ready, _, request = await ask_refund(connect, REFUND)
    conversation, approval = ready["conversation"], request["approval"]
    _, html = await run(page)(sam, conversation)
    assert "Decide for the user" in html and "the user decides" in html
    assert "Approval needed" not in html  # the user decides: not the team's to attend to
    status, body = await run(api_post)(sam, f"/approvals/{approval}/", {"approve": True})
    assert status == 200 and body["status"] == "approved"
    assert (await comm.receive_json_from(timeout=TIMEOUT))["outcome"] == "approved"
    frames = await until_turn_done(comm)
    assert frames[-1]["status"] == "ok"
    assert len(refunds(demo_backend)) == 1
    await comm.disconnect()


async def test_not_staff_cannot_see_or_decide(connect, demo_backend, bob):
    comm, conversation, approval = await staff_refund(connect)
    status, _ = await run(page)(bob, conversation)
    assert status == 403
    status, _ = await run(decide_in_inbox)(bob, conversation, approval, "approve")
    assert status == 403
    anonymous = await run(
        lambda: Client().post(
            f"/staff/c/{conversation}/approvals/{approval}/", {"decision": "approve"}
        )
    )()
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
    status, body = await run(api_post)(bob, f"/approvals/{approval}/", {"approve": True})
    assert (
        status == 403
        and body["error"] == "The staff API is for active members of the support team."
    )
    status, body = await run(
        lambda: (lambda r: (r.status_code, json.loads(r.content)))(
            Client().post(f"{API}/approvals/{approval}/", "{}", content_type="application/json")
        )
    )()
    assert status == 401
    assert (await Approval.objects.aget(uuid=approval)).status == "pending"
    assert refunds(demo_backend) == []
    await comm.disconnect()


@pytest.mark.parametrize(
    "body",
    ['{"approve": "yes"}', '{"approve": 1}', "{}", "[true]", '{"approve": null}', "not json", ""],
)
async def test_a_bad_body_is_400_in_plain_words(connect, demo_backend, sam, body):
    comm, _, approval = await staff_refund(connect)
    status, answer = await run(api_post)(sam, f"/approvals/{approval}/", body)
    assert status == 400
    if body == "not json":
        assert answer["error"].startswith("The request body is not valid JSON")
    else:
        assert (
            answer["error"] == 'Send {"approve": true} to approve or {"approve": false} to decline.'
        )
        assert answer["fields"] == {"approve": "This must be true or false (a JSON boolean)."}
    assert (await Approval.objects.aget(uuid=approval)).status == "pending"
    await comm.disconnect()


def test_unknown_approvals_are_404_and_plain_words(sam, team):
    words = "There is no such approval in this conversation."
    for key in ("6f1c1a1e-3c59-4a57-9d1b-4b7d0c1a2b3c", "nope"):
        status, body = api_post(sam, f"/approvals/{key}/", {"approve": True})
        assert (status, body) == (404, {"error": words})
    status, body = api_get(sam, "/conversations/6f1c1a1e-3c59-4a57-9d1b-4b7d0c1a2b3c/approvals/")
    assert status == 404 and body["error"] == "There is no conversation with this id."


async def test_in_the_inbox_an_approval_of_another_conversation_is_not_found(
    connect, demo_backend, sam
):
    comm, _, approval = await staff_refund(connect)
    other = await run(lambda: Conversation.objects.create(site=Conversation.objects.first().site))()
    status, html = await run(decide_in_inbox)(sam, str(other.uuid), approval, "approve")
    assert status == 200 and "There is no such approval in this conversation." in html
    _, html = await run(decide_in_inbox)(sam, str(other.uuid), approval, "maybe")
    assert "Choose Approve or Decline." in html
    assert (await Approval.objects.aget(uuid=approval)).status == "pending"
    await comm.disconnect()


async def test_the_admin_lists_approvals_read_only_and_the_transcript_shows_them(
    connect, demo_backend, sam
):
    comm, conversation, approval = await staff_refund(connect)
    await run(decide_in_inbox)(sam, conversation, approval, "decline")
    await comm.receive_json_from(timeout=TIMEOUT)
    await until_turn_done(comm)
    stored = await Approval.objects.aget(uuid=approval)

    def admin_pages() -> tuple:
        client = logged_in(sam)
        listing = client.get("/admin/orchestrator/approval/?status=declined&by=staff")
        change = client.get(f"/admin/orchestrator/approval/{stored.pk}/change/")
        add = client.get("/admin/orchestrator/approval/add/")
        pk = Conversation.objects.get(uuid=conversation).pk
        transcript = client.get(f"/admin/chat/conversation/{pk}/change/")
        return listing, change, add, transcript

    listing, change, add, transcript = await run(admin_pages)()
    assert listing.status_code == 200
    text = listing.content.decode()
    assert "Refund EUR 240.00 for invoice ACME-2024-000124" in text and "sam" in text
    assert change.status_code == 200
    body = change.content.decode()
    assert "The paused run" in body and 'name="run_state"' not in body
    assert add.status_code == 403
    shown = transcript.content.decode()
    assert "asked for approval (staff decide)" in shown
    assert "approval <strong>declined</strong> by sam" in shown
    await comm.disconnect()


async def test_approved_while_staff_have_the_conversation_it_carries_on_after_the_hand_back(
    connect, demo_backend, sam
):
    comm, conversation, approval = await staff_refund(connect)
    row = await run(Conversation.objects.select_related("site").get)(uuid=conversation)
    await run(people.staff_take_over)(conversation=row, staff=sam)
    assert (await comm.receive_json_from(timeout=TIMEOUT))["type"] == "conversation.status"
    _, html = await run(decide_in_inbox)(sam, conversation, approval, "approve")
    assert "Approved: the agents carry on once the conversation is handed back to them." in html
    assert (await comm.receive_json_from(timeout=TIMEOUT))["outcome"] == "approved"
    await turns.wait_idle(timeout=10)
    assert refunds(demo_backend) == []  # nobody answers while staff have it
    await run(people.staff_hand_back)(conversation=row, staff=sam)
    frames = await until_turn_done(comm)
    assert frames[-1]["status"] == "ok"
    assert len(refunds(demo_backend)) == 1
    await comm.disconnect()


async def test_an_expired_approval_is_409_and_the_run_resumes_as_not_approved(
    connect, demo_backend, sam
):
    comm, conversation, approval = await staff_refund(connect)
    await Approval.objects.aupdate(expires_at=timezone.now() - timedelta(seconds=1))
    status, body = await run(api_post)(sam, f"/approvals/{approval}/", {"approve": True})
    assert status == 409 and body["outcome"] == "expired"
    assert body["error"] == (
        "This was already expired: nobody decided in time, so nothing was done."
    )
    assert (await comm.receive_json_from(timeout=TIMEOUT))["outcome"] == "expired"
    frames = await until_turn_done(comm)
    (reply,) = replies(frames)
    assert reply.startswith("Nobody approved this request in time, so nothing was done.")
    assert refunds(demo_backend) == []
    await comm.disconnect()
