"""The staff API (/api/staff/, docs/staff-api.md): personal tokens (made by the command,
stored as a digest, revoked), who may call it (401, 403, the session with CSRF), each
endpoint through chat.people and its refusals in plain words, bad input as plain-word
JSON, and the OpenAPI schema."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from chat import people, ratelimit, services, staff_api, staff_tokens
from chat.models import (
    Conversation,
    ConversationEvent,
    Message,
    StaffNote,
    StaffPresence,
    StaffToken,
)


def supervisor(user):
    from django.contrib.auth.models import Group

    user.groups.add(Group.objects.get(name="Supervisor"))
    return user


pytestmark = pytest.mark.django_db

BASE = "/api/staff"


@pytest.fixture
def site(db):
    return services.site_ensure_default()


def open_conversation(site, *texts: str, name: str = "") -> Conversation:
    conversation, _, _ = services.conversation_open(
        site=site, token=None, user={"name": name} if name else {}, context={}
    )
    for text in texts:
        Message.objects.create(conversation=conversation, role="user", text=text)
    return conversation


def staff_user(username: str, first_name: str = "", **extra):
    extra.setdefault("is_staff", True)
    return get_user_model().objects.create_user(
        username, password="x", first_name=first_name, **extra
    )


@pytest.fixture
def sam():
    return staff_user("sam", "Sam")


@pytest.fixture
def ana():
    return staff_user("ana", "Ana")


@pytest.fixture
def bob():
    return staff_user("bob", "Bob", is_staff=False)


def make_token(username: str) -> str:
    out, err = StringIO(), StringIO()
    call_command("staff_token", username, stdout=out, stderr=err)
    return out.getvalue().strip()


def bearer(token: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.fixture
def api_of():
    def make(user) -> Client:
        return bearer(make_token(user.get_username()))

    return make


def post(client: Client, path: str, data=None, **extra):
    if data is None:  # no body at all (as `curl -X POST` sends)
        return client.post(f"{BASE}{path}", b"", content_type="application/json", **extra)
    body = data if isinstance(data, str | bytes) else json.dumps(data)
    return client.post(f"{BASE}{path}", body, content_type="application/json", **extra)


def get(client: Client, path: str, **params):
    return client.get(f"{BASE}{path}", params)


def fresh(conversation: Conversation) -> Conversation:
    return Conversation.objects.select_related("owner").get(pk=conversation.pk)


def c_path(conversation: Conversation, action: str = "") -> str:
    return f"/conversations/{conversation.uuid}/" + (f"{action}/" if action else "")


def error_of(response) -> str:
    assert response["Content-Type"] == "application/json", response.content
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in body["error"]
    return body["error"]


# --- The token command ----------------------------------------------------------------


def test_the_command_prints_a_token_stored_only_as_its_digest(sam, site):
    out, err = StringIO(), StringIO()
    call_command("staff_token", "sam", stdout=out, stderr=err)
    token = out.getvalue().strip()
    assert token.startswith("sost_") and len(token) >= 45 and "\n" not in token
    assert "shown only now" in err.getvalue() and "--revoke" in err.getvalue()

    row = StaffToken.objects.get(user=sam)
    assert row.digest == hashlib.sha256(token.encode()).hexdigest()
    assert row.prefix == token[:12] and row.last_used_at is None
    stored = [str(v) for v in StaffToken.objects.values_list(flat=False).get()]
    assert token not in stored  # only the digest and the prefix

    response = get(bearer(token), "/conversations/")
    assert response.status_code == 200
    row.refresh_from_db()
    assert row.last_used_at is not None

    # Each call makes a new one; both work.
    second = make_token("sam")
    assert second != token and StaffToken.objects.filter(user=sam).count() == 2


def test_revoked_tokens_no_longer_work(sam, ana, site):
    token, other = make_token("sam"), make_token("ana")
    out = StringIO()
    call_command("staff_token", "sam", "--revoke", stdout=out)
    assert out.getvalue().strip() == "Revoked 1 token(s) of sam."
    response = get(bearer(token), "/conversations/")
    assert response.status_code == 401 and "revoked" in error_of(response)
    assert get(bearer(other), "/conversations/").status_code == 200  # only sam's


@pytest.mark.parametrize(
    ("username", "words"),
    [
        ("nobody", "There is no user called 'nobody'."),
        ("bob", "bob is not a member of staff"),
        ("ivy", "ivy is not active"),
    ],
)
def test_the_command_refuses_in_plain_words(bob, username, words):
    staff_user("ivy", is_active=False)
    with pytest.raises(CommandError, match=words):
        call_command("staff_token", username, stdout=StringIO(), stderr=StringIO())
    assert not StaffToken.objects.exists()


def test_a_token_is_marked_used_at_most_once_a_minute(sam):
    token, row = staff_tokens.staff_token_create(user=sam)
    now = timezone.now()
    assert staff_tokens.staff_token_user(token=token, now=now) == sam
    row.refresh_from_db()
    assert row.last_used_at == now
    staff_tokens.staff_token_user(token=token, now=now + timedelta(seconds=30))
    row.refresh_from_db()
    assert row.last_used_at == now  # not written again within the minute
    later = now + timedelta(seconds=61)
    staff_tokens.staff_token_user(token=token, now=later)
    row.refresh_from_db()
    assert row.last_used_at == later
    assert staff_tokens.staff_token_user(token=token + "x") is None
    assert staff_tokens.staff_token_user(token="sost_" + "a" * 500) is None


def test_the_admin_lists_tokens_read_only(sam, site):
    admin = staff_user("root", is_superuser=True)
    make_token("sam")
    client = Client()
    client.force_login(admin)
    listing = client.get("/admin/chat/stafftoken/")
    assert listing.status_code == 200 and b"sost_" in listing.content
    row = StaffToken.objects.get()
    assert row.digest.encode() not in listing.content
    assert client.get("/admin/chat/stafftoken/add/").status_code == 403
    page = client.get(f"/admin/chat/stafftoken/{row.pk}/change/")
    assert page.status_code == 200 and row.digest.encode() not in page.content
    client.post(f"/admin/chat/stafftoken/{row.pk}/change/", {"prefix": "x"})
    row.refresh_from_db()
    assert row.prefix.startswith("sost_")
    client.post(f"/admin/chat/stafftoken/{row.pk}/delete/", {"post": "yes"})
    assert not StaffToken.objects.exists()


# --- Who may call it ------------------------------------------------------------------


def test_no_credentials_is_401_in_plain_words(site):
    conversation = open_conversation(site, "help")
    for response in (
        Client().get(f"{BASE}/conversations/"),
        Client().post(f"{BASE}{c_path(conversation, 'takeover')}"),  # not a CSRF error
        Client(HTTP_AUTHORIZATION="Basic c2FtOng=").get(f"{BASE}/conversations/"),
    ):
        assert response.status_code == 401
        assert "Authorization: Bearer" in error_of(response)
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert fresh(conversation).status == "bot"


def test_a_wrong_token_is_401(site):
    for token in ("sost_nope", "nope", ""):
        response = get(bearer(token), "/conversations/")
        assert response.status_code == 401, token
        error_of(response)


def test_tokens_of_users_no_longer_active_staff_are_403(sam, site):
    token = make_token("sam")
    sam.is_staff = False
    sam.save()
    response = get(bearer(token), "/conversations/")
    assert response.status_code == 403 and error_of(response) == staff_api.NOT_STAFF
    sam.is_staff, sam.is_active = True, False
    sam.save()
    assert get(bearer(token), "/conversations/").status_code == 403


def test_the_staff_session_works_and_non_staff_sessions_are_403(sam, bob, site):
    client = Client()
    client.force_login(sam)
    assert get(client, "/conversations/").status_code == 200
    client.force_login(bob)
    response = get(client, "/conversations/")
    assert response.status_code == 403 and error_of(response) == staff_api.NOT_STAFF


def test_the_session_needs_the_csrf_token_for_actions(sam, site):
    conversation = open_conversation(site, "help")
    client = Client(enforce_csrf_checks=True)
    client.force_login(sam)
    response = post(client, c_path(conversation, "takeover"))
    assert response.status_code == 403 and "X-CSRFToken" in error_of(response)
    response = post(client, c_path(conversation, "notes"), {"text": "forged"})
    assert response.status_code == 403
    assert fresh(conversation).status == "bot" and not StaffNote.objects.exists()

    # Any answer to the session brings the csrftoken cookie; sent back in the header, it works.
    listing = get(client, "/conversations/")
    csrf = listing.cookies["csrftoken"].value
    response = post(client, c_path(conversation, "takeover"), HTTP_X_CSRFTOKEN=csrf)
    assert response.status_code == 200 and fresh(conversation).owner_id == sam.pk


def test_a_token_needs_no_csrf_token(sam, site):
    conversation = open_conversation(site, "help")
    client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {make_token('sam')}")
    assert post(client, c_path(conversation, "takeover")).status_code == 200


def test_every_request_counts_the_member_of_staff_as_seen(sam, site, api_of):
    conversation = open_conversation(site, "help")  # with the agents: no hand-back
    client = api_of(sam)
    assert not StaffPresence.objects.filter(user=sam).exists()
    get(client, "/conversations/")
    seen = StaffPresence.objects.get(user=sam).last_seen
    assert post(client, c_path(conversation, "handback")).status_code == 409  # refused: still seen
    assert StaffPresence.objects.get(user=sam).last_seen >= seen


# --- The list -------------------------------------------------------------------------


def test_the_list_is_the_inbox_order_with_a_status_filter(sam, site, api_of):
    with_agents = open_conversation(site, "what are your hours?", name="Lee")
    waiting = open_conversation(site, "I need a person")
    people.request_human(conversation=waiting, source="user")
    mine = open_conversation(site, "refund please")
    people.staff_take_over(conversation=mine, staff=sam)
    done = open_conversation(site, "thanks")
    people.staff_resolve(conversation=done, staff=sam)
    client = api_of(sam)

    body = get(client, "/conversations/").json()
    assert body["count"] == 4 and body["limit"] == 50 and body["offset"] == 0
    assert [row["uuid"] for row in body["items"]] == [
        str(c.uuid) for c in (waiting, mine, with_agents, done)
    ]
    first = body["items"][0]
    assert first["status"] == "waiting" and first["waiting_since"] is not None
    assert first["last_message"] == "I need a person" and first["unread"] == 1
    assert first["last_role"] == "user" and first["site"]["key"] == site.key
    assert body["items"][1]["owner"] == {"id": sam.pk, "username": "sam", "name": "Sam"}
    assert body["items"][2]["user_name"] == "Lee"

    for status, expected in (("waiting", waiting), ("human", mine), ("bot", with_agents)):
        rows = get(client, "/conversations/", status=status).json()
        assert [r["uuid"] for r in rows["items"]] == [str(expected.uuid)] and rows["count"] == 1


def test_the_list_searches_and_pages(sam, site, api_of):
    for i in range(5):
        open_conversation(site, f"order {i} is late")
    open_conversation(site, "something else")
    client = api_of(sam)
    body = get(client, "/conversations/", q="  IS   late ", limit=2, offset=1).json()
    assert body["count"] == 5 and body["limit"] == 2 and body["offset"] == 1
    assert len(body["items"]) == 2
    everything = get(client, "/conversations/", q="is late", limit=100).json()
    assert [r["uuid"] for r in everything["items"][1:3]] == [r["uuid"] for r in body["items"]]
    assert get(client, "/conversations/", offset=10).json()["items"] == []


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"status": "open"}, "status", "Use one of 'bot', 'waiting', 'human' or 'resolved'."),
        ({"limit": 101}, "limit", "at most 100"),
        ({"limit": 0}, "limit", "at least 1"),
        ({"offset": -1}, "offset", "at least 0"),
        ({"limit": "ten"}, "limit", "whole number"),
    ],
)
def test_bad_list_parameters_are_refused_in_plain_words(sam, site, api_of, params, field, words):
    response = get(api_of(sam), "/conversations/", **params)
    assert response.status_code == 422
    assert words in error_of(response) and words in response.json()["fields"][field]


def test_a_search_too_long_is_refused_in_plain_words(sam, site, api_of):
    response = get(api_of(sam), "/conversations/", q="x" * 201)
    assert response.status_code == 400
    assert "too long" in error_of(response) and "q" in response.json()["fields"]


# --- One conversation -----------------------------------------------------------------


def test_the_detail_has_the_transcript_notes_rating_and_contact(sam, site, api_of):
    conversation = open_conversation(site, name="Lee")
    Message.objects.create(
        conversation=conversation, role="user", text="my parcel is lost", status="pending"
    )
    Message.objects.create(
        conversation=conversation,
        role="assistant",
        agent_slug="shipping",
        agent_name="Shipping",
        text="Sorry! Let me check.",
    )
    Message.objects.create(conversation=conversation, role="system", text="internal")
    people.staff_reply(conversation=conversation, staff=sam, text="Found it.")
    people.staff_note_add(conversation=conversation, staff=sam, text="Courier called.")
    people.contact_email_set(conversation=conversation, email="lee@example.com")
    people.staff_resolve(conversation=conversation, staff=sam)
    people.csat_record(conversation=conversation, score=4, comment="quick")

    response = get(api_of(sam), c_path(conversation))
    assert response.status_code == 200
    body = response.json()
    assert body["uuid"] == str(conversation.uuid) and body["status"] == "resolved"
    assert body["owner"]["username"] == "sam"
    assert [(m["role"], m["author"], m["agent"], m["text"]) for m in body["messages"]] == [
        ("user", "Lee", None, "my parcel is lost"),
        ("assistant", "Shipping", "shipping", "Sorry! Let me check."),
        ("staff", "Sam", "staff", "Found it."),
    ]
    assert all(m["created_at"] and m["uuid"] for m in body["messages"])
    assert body["messages"][0]["status"] == "answered"  # the staff reply answered it
    assert [(n["author"]["username"], n["text"]) for n in body["notes"]] == [
        ("sam", "Courier called.")
    ]
    assert body["csat"]["score"] == 4 and body["csat"]["comment"] == "quick"
    assert body["contact_email"] == "lee@example.com" and body["user"]["name"] == "Lee"
    assert body["site"] == {"key": site.key, "name": site.name}


def test_an_unknown_conversation_is_404_and_a_bad_id_422(sam, site, api_of):
    client = api_of(sam)
    unknown = "/conversations/3f2b8c1e-0d4a-4c7e-9a51-2b6f0e8d7c34/"
    for response in (get(client, unknown), post(client, unknown + "takeover/")):
        assert response.status_code == 404
        assert error_of(response) == "There is no conversation with this id."
    response = get(client, "/conversations/not-a-uuid/")
    assert response.status_code == 422
    assert "not a conversation id" in response.json()["fields"]["key"]
    assert post(client, "/conversations/not-a-uuid/resolve/").status_code == 422


# --- Actions --------------------------------------------------------------------------


def test_take_over_and_the_second_is_told_who_has_it(sam, ana, site, api_of):
    conversation = open_conversation(site, "help")
    people.request_human(conversation=conversation, source="user")
    response = post(api_of(sam), c_path(conversation, "takeover"))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "human" and body["owner"]["username"] == "sam"
    assert post(api_of(sam), c_path(conversation, "takeover")).status_code == 200  # idempotent

    response = post(api_of(ana), c_path(conversation, "takeover"))
    assert response.status_code == 409
    assert error_of(response) == (
        "Sam has already taken this conversation over; taking it over is not possible now."
    )
    assert fresh(conversation).owner_id == sam.pk
    events = ConversationEvent.objects.filter(conversation=conversation, to_status="human")
    assert [e.actor_id for e in events] == [sam.pk]


def test_reply(sam, site, api_of):
    conversation = open_conversation(site, "anyone there?")
    response = post(api_of(sam), c_path(conversation, "reply"), {"text": "  Hi, Sam here.  "})
    assert response.status_code == 201
    body = response.json()
    assert body["message"]["role"] == "staff" and body["message"]["author"] == "Sam"
    assert body["message"]["text"] == "Hi, Sam here."
    assert body["conversation"]["status"] == "human"
    assert body["conversation"]["owner"]["username"] == "sam"
    staff_message = Message.objects.get(conversation=conversation, role="staff")
    assert (
        staff_message.text == "Hi, Sam here." and str(staff_message.uuid) == body["message"]["uuid"]
    )


def test_a_reply_to_a_resolved_conversation_reopens_it(sam, ana, site, api_of):
    conversation = open_conversation(site, "thanks")
    people.staff_take_over(conversation=conversation, staff=ana)
    people.staff_resolve(conversation=conversation, staff=ana)
    response = post(api_of(sam), c_path(conversation, "reply"), {"text": "One more thing."})
    assert response.status_code == 201
    assert response.json()["conversation"]["status"] == "human"
    current = fresh(conversation)
    assert current.status == "human" and current.owner_id == sam.pk


@pytest.mark.parametrize(
    ("body", "status", "field", "words"),
    [
        ({"text": "   "}, 422, "text", "This is empty."),
        ({"text": "x" * (people.REPLY_CHARS + 1)}, 422, "text", "at most 4000 characters"),
        ({"text": 5}, 422, "text", "must be text"),
        ({}, 422, "text", "This is required."),
        ([1, 2], 422, "text", None),
        ("{not json", 400, None, "not valid JSON"),
        (b"\xff\xfe", 400, None, "not valid JSON"),
    ],
)
def test_bad_replies_are_refused_in_plain_words(sam, site, api_of, body, status, field, words):
    conversation = open_conversation(site, "help")
    response = post(api_of(sam), c_path(conversation, "reply"), body)
    assert response.status_code == status, response.content
    error = error_of(response)
    if field is not None:
        assert field in response.json()["fields"]
    if words is not None:
        assert words in error
    assert "pydantic" not in error and "Traceback" not in error
    assert not Message.objects.filter(role="staff").exists()
    assert fresh(conversation).status == "bot"


def test_a_reply_without_a_body_is_refused(sam, site, api_of):
    conversation = open_conversation(site, "help")
    response = post(api_of(sam), c_path(conversation, "reply"))
    assert response.status_code == 422 and "JSON body" in error_of(response)


def test_hand_back_stores_the_note(sam, site, api_of):
    conversation = open_conversation(site, "help")
    people.staff_take_over(conversation=conversation, staff=sam)
    note = "Refund sent; they may ask about the invoice."
    response = post(api_of(sam), c_path(conversation, "handback"), {"note": f" {note} "})
    assert response.status_code == 200
    assert response.json()["status"] == "bot" and response.json()["owner"] is None
    assert response.json()["handback_note"] == note
    current = fresh(conversation)
    assert current.status == "bot" and current.handback_note == note
    event = ConversationEvent.objects.filter(conversation=conversation).last()
    assert event.to_status == "bot" and event.reason == note and event.actor_id == sam.pk


def test_hand_back_without_a_body_and_its_refusal(sam, site, api_of):
    conversation = open_conversation(site, "help")
    client = api_of(sam)
    response = post(client, c_path(conversation, "handback"))
    assert response.status_code == 409
    assert error_of(response) == (
        "The agents are answering this conversation; handing it back is not possible now."
    )
    people.staff_take_over(conversation=conversation, staff=sam)
    assert post(client, c_path(conversation, "handback")).status_code == 200
    assert fresh(conversation).handback_note == ""
    people.staff_take_over(conversation=conversation, staff=sam)
    response = post(client, c_path(conversation, "handback"), {"note": "x" * 4001})
    assert response.status_code == 422 and "at most 4000" in response.json()["fields"]["note"]


def test_resolve(sam, ana, site, api_of):
    conversation = open_conversation(site, "help")
    for _ in range(2):  # idempotent
        response = post(api_of(sam), c_path(conversation, "resolve"))
        assert response.status_code == 200 and response.json()["status"] == "resolved"
    assert fresh(conversation).status == "resolved"


def test_assign_by_username_or_id(sam, ana, site, api_of):
    supervisor(sam)  # assigning is a Supervisor's (chat/roles.py)
    conversation = open_conversation(site, "help")
    client = api_of(sam)
    response = post(client, c_path(conversation, "assign"), {"user": "ana"})
    assert response.status_code == 200 and response.json()["owner"]["username"] == "ana"
    response = post(client, c_path(conversation, "assign"), {"user": sam.pk})
    assert response.status_code == 200 and response.json()["owner"]["username"] == "sam"
    assert fresh(conversation).owner_id == sam.pk


def test_assign_refusals_in_plain_words(sam, bob, site, api_of):
    supervisor(sam)  # assigning is a Supervisor's (chat/roles.py)
    conversation = open_conversation(site, "help")
    client = api_of(sam)
    response = post(client, c_path(conversation, "assign"), {"user": "bob"})
    assert response.status_code == 409
    assert error_of(response) == "bob is not an active member of staff."
    response = post(client, c_path(conversation, "assign"), {"user": "nobody"})
    assert response.status_code == 422
    assert response.json()["fields"]["user"] == "There is no user 'nobody'."
    for bad in (True, None, "", [1]):
        response = post(client, c_path(conversation, "assign"), {"user": bad})
        assert response.status_code == 422, bad
        assert "username" in response.json()["fields"]["user"]
    assert fresh(conversation).status == "bot"


def test_notes(sam, site, api_of):
    conversation = open_conversation(site, "help")
    client = api_of(sam)
    response = post(client, c_path(conversation, "notes"), {"text": "VIP customer"})
    assert response.status_code == 201
    body = response.json()
    assert body["text"] == "VIP customer" and body["author"]["username"] == "sam"
    assert StaffNote.objects.get().text == "VIP customer"
    # never sent to the user (texts are encrypted: compared in Python, not in SQL)
    assert "VIP customer" not in [m.text for m in Message.objects.all()]
    response = post(client, c_path(conversation, "notes"), {"text": ""})
    assert response.status_code == 422 and response.json()["fields"]["text"] == "This is empty."
    response = post(client, c_path(conversation, "notes"), {"text": "n" * 4001})
    assert response.status_code == 422
    assert StaffNote.objects.count() == 1


# --- Size, unknown paths, the schema --------------------------------------------------


def test_bodies_are_bounded(sam, site, api_of, settings):
    conversation = open_conversation(site, "help")
    client = api_of(sam)
    big = json.dumps({"text": "x" * (staff_api.BODY_MAX_BYTES + 1)})
    response = post(client, c_path(conversation, "reply"), big)
    assert response.status_code == 413 and "too large" in error_of(response)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = post(client, c_path(conversation, "reply"), {"text": "y" * 2000})
    assert response.status_code == 413 and "too large" in error_of(response)
    assert not Message.objects.filter(role="staff").exists()


def test_unknown_paths_answer_json(sam, site, api_of):
    client = api_of(sam)
    response = client.get(f"{BASE}/conversations")
    assert response.status_code == 404
    assert "did you mean /api/staff/conversations/" in error_of(response)
    response = client.post(f"{BASE}/nothing/here/")
    assert response.status_code == 404 and "openapi.json" in error_of(response)
    assert client.get(f"{BASE}/docs").status_code == 404  # no docs page


def test_a_wrong_method_is_405_in_json(sam, site, api_of):
    conversation = open_conversation(site, "help")
    response = api_of(sam).get(f"{BASE}{c_path(conversation, 'takeover')}")
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert error_of(response) == "This endpoint does not take GET; use POST."
    assert fresh(conversation).owner is None


def test_each_member_of_staff_has_a_request_rate(sam, ana, site, api_of, settings):
    settings.SUPERORCH_STAFF_API_RATE = "3/minute"
    settings.SUPERORCH_RATE_LIMIT_STORAGE = "memory://"
    ratelimit._sync_limiter = None  # a fresh store for this test
    sams, anas = api_of(sam), api_of(ana)
    assert [get(sams, "/conversations/").status_code for _ in range(3)] == [200] * 3
    response = get(sams, "/conversations/")
    assert response.status_code == 429 and response["Retry-After"] == "60"
    assert error_of(response).startswith("Too many requests from your account (at most 3/")
    assert get(anas, "/conversations/").status_code == 200  # a colleague is not slowed


def test_the_openapi_schema_lists_every_endpoint():
    response = Client().get(f"{BASE}/openapi.json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    paths = {path: set(ops) for path, ops in schema["paths"].items()}
    key = f"{BASE}/conversations/{{key}}"
    assert paths == {
        f"{BASE}/conversations/": {"get"},
        f"{key}/": {"get"},
        **{f"{key}/{action}/": {"post"} for action in staff_api_actions()},
        f"{key}/approvals/": {"get"},
        f"{BASE}/approvals/{{approval}}/": {"post"},
        f"{BASE}/privacy/users/{{site}}/{{user_id}}/": {"get", "delete"},  # chat.privacy_api
    }
    schemes = schema["components"]["securitySchemes"]
    assert schemes["StaffToken"] == {"type": "http", "scheme": "bearer"}
    assert schemes["StaffSession"]["in"] == "cookie"
    reply = schema["paths"][f"{key}/reply/"]["post"]
    assert {"201", "401", "403", "404", "409", "422"} <= set(reply["responses"])


def staff_api_actions() -> list[str]:
    return ["takeover", "reply", "handback", "resolve", "assign", "notes"]
