"""The staff inbox pages (/staff/): who may see them, the list's order and unread counts,
the search, each action through chat.people and its refusal in plain words, and CSRF;
canned replies, who is online, and the email and webhook for a new waiting conversation."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from chat import inbox, people, services, staff_notify
from chat.models import (
    CannedReply,
    Conversation,
    ConversationEvent,
    Message,
    StaffNote,
    StaffPresence,
)
from orchestrator.alerts import webhook_signature


def supervisor(user):
    from django.contrib.auth.models import Group

    user.groups.add(Group.objects.get(name="Supervisor"))
    return user


pytestmark = pytest.mark.django_db


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
    return get_user_model().objects.create_user(
        username, password="x", is_staff=True, first_name=first_name, **extra
    )


@pytest.fixture
def sam():
    return staff_user("sam", "Sam")


@pytest.fixture
def ana():
    return staff_user("ana", "Ana")


@pytest.fixture
def client_of():
    def make(user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make


def fresh(conversation: Conversation) -> Conversation:
    return Conversation.objects.select_related("owner").get(pk=conversation.pk)


def url(name: str, conversation: Conversation | None = None) -> str:
    return reverse(f"staff:{name}", args=[conversation.uuid] if conversation else [])


# --- Who may see it -----------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_the_login_page(site):
    conversation = open_conversation(site, "hello")
    for page in (url("inbox"), url("conversation", conversation)):
        response = Client().get(page)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login") + "?next=")
    response = Client().post(url("takeover", conversation))
    assert response.status_code == 302 and fresh(conversation).status == "bot"


def test_a_logged_in_user_who_is_not_staff_is_refused(site, client_of):
    conversation = open_conversation(site, "hello")
    user = get_user_model().objects.create_user("joe", password="x")
    client = client_of(user)
    assert client.get(url("inbox")).status_code == 403
    assert client.post(url("takeover", conversation)).status_code == 403
    assert fresh(conversation).status == "bot"


def test_an_unknown_conversation_is_404(sam, client_of):
    response = client_of(sam).get("/staff/c/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404


# --- The list -------------------------------------------------------------------------------


def test_waiting_come_first_longest_waiting_first_then_human_bot_resolved(site, sam, client_of):
    bot = open_conversation(site, "just browsing")
    resolved = open_conversation(site, "thanks")
    people.staff_resolve(conversation=resolved, staff=sam)
    human = open_conversation(site, "billing")
    people.staff_take_over(conversation=human, staff=sam)
    later = open_conversation(site, "a person please")
    people.request_human(conversation=later, source="user")
    earlier = open_conversation(site, "a human now")
    people.request_human(conversation=earlier, source="user")
    Conversation.objects.filter(pk=earlier.pk).update(
        status_changed_at=timezone.now() - timedelta(minutes=10)
    )

    rows = list(inbox.inbox_conversations(staff=sam))
    assert [c.pk for c in rows] == [earlier.pk, later.pk, human.pk, bot.pk, resolved.pk]
    page = client_of(sam).get(url("inbox")).content.decode()
    positions = [page.index(f'data-conversation="{c.uuid}"') for c in rows]
    assert positions == sorted(positions)
    assert 'data-waiting="2"' in page


def test_the_list_shows_the_last_message_the_owner_and_unread_counts(site, sam):
    conversation = open_conversation(site, "first", "second", name="Dana")
    people.staff_take_over(conversation=conversation, staff=sam)
    row = inbox.inbox_conversations(staff=sam)[0]
    assert (row.last_text, row.unread, row.owner.username) == ("second", 2, "sam")

    people.staff_reply(conversation=conversation, staff=sam, text="On it.")
    Message.objects.create(conversation=conversation, role="user", text="thanks!")
    row = inbox.inbox_conversations(staff=sam)[0]
    assert (row.last_text, row.unread) == ("thanks!", 1)


def test_search_finds_conversations_by_message_text(site, sam, client_of):
    refund = open_conversation(site, "I want a REFUND for May")
    open_conversation(site, "password reset")
    assert [c.pk for c in inbox.inbox_conversations(staff=sam, query="refund for")] == [refund.pk]

    page = client_of(sam).get(url("inbox"), {"q": "  refund   for "}).content.decode()
    assert f'data-conversation="{refund.uuid}"' in page
    assert "password reset" not in page
    nothing = client_of(sam).get(url("inbox"), {"q": "nowhere"}).content.decode()
    assert "No conversation has a message with these words." in nothing


def test_a_search_that_is_too_long_is_refused_in_plain_words(sam, client_of):
    response = client_of(sam).get(url("inbox"), {"q": "x" * (inbox.QUERY_MAX_CHARS + 1)})
    assert response.status_code == 400
    assert "The search is too long (201 characters; at most 200)." in response.content.decode()


def test_the_list_filters_by_status_and_keeps_the_filter_when_it_refreshes(site, sam, client_of):
    waiting = open_conversation(site, "a person please")
    people.request_human(conversation=waiting, source="user")
    bot = open_conversation(site, "just browsing")
    client = client_of(sam)
    page = client.get(url("inbox"), {"status": "waiting"}).content.decode()
    assert f'data-conversation="{waiting.uuid}"' in page
    assert f'data-conversation="{bot.uuid}"' not in page
    assert '<option value="waiting" selected>' in page
    assert "?q=&amp;status=waiting" in page  # the live refresh asks for the same rows
    assert (
        "No conversation has this status."
        in client.get(url("inbox"), {"status": "resolved"}).content.decode()
    )
    assert f'data-conversation="{bot.uuid}"' in client.get(url("inbox")).content.decode()


def test_an_unknown_status_filter_is_refused_in_plain_words(sam, client_of):
    response = client_of(sam).get(url("inbox"), {"status": "nonsense"})
    assert response.status_code == 400
    assert (
        "There is no status “nonsense”; use one of bot, waiting, human, resolved"
        in response.content.decode()
    )


def test_htmx_gets_the_list_partial_only(site, sam, client_of):
    open_conversation(site, "hello")
    response = client_of(sam).get(url("inbox"), headers={"HX-Request": "true"})
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="inbox-list"') and "<html" not in body


# --- The conversation page and its actions ------------------------------------------------


def test_the_conversation_page_shows_the_transcript_safely_and_the_notes(site, sam, client_of):
    conversation = open_conversation(site, "<script>alert(1)</script> **bold**")
    Message.objects.create(
        conversation=conversation, role="assistant", agent_name="Billing", text="Hi there"
    )
    StaffNote.objects.create(conversation=conversation, author=sam, text="VIP customer")
    page = client_of(sam).get(url("conversation", conversation)).content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "<strong>bold</strong>" in page
    assert "Billing" in page and "Hi there" in page and "VIP customer" in page

    partial = client_of(sam).get(
        url("conversation", conversation), {"part": "transcript"}, headers={"HX-Request": "true"}
    )
    assert partial.content.decode().lstrip().startswith('<ol id="transcript"')


def test_the_list_previews_the_last_message_as_plain_text(site, sam, client_of):
    conversation = open_conversation(site, "hello")
    Message.objects.create(
        conversation=conversation,
        role="assistant",
        text="Here's what our help centre says (**Refund policy**): [Read](/help/refund/)",
    )
    page = client_of(sam).get(url("inbox")).content.decode()
    assert "Here&#x27;s what our help centre says (Refund policy): Read" in page
    assert "**Refund policy**" not in page and "](/help/" not in page


def test_the_transcript_keeps_a_replys_line_breaks_as_the_chat_shows_them(site, sam, client_of):
    conversation = open_conversation(site, "How long does a refund take?")
    Message.objects.create(
        conversation=conversation,
        role="assistant",
        agent_name="Billing",
        text="**How long a refund takes**\nApproved refunds are processed within 1-2 days.",
    )
    page = client_of(sam).get(url("conversation", conversation)).content.decode()
    assert "<strong>How long a refund takes</strong><br>" in page


def test_the_users_rating_shows_on_the_conversation_page(site, sam, client_of):
    conversation = open_conversation(site, "Thanks")
    people.staff_resolve(conversation=conversation, staff=sam)
    client = client_of(sam)
    assert (
        'data-testid="csat-rating"'
        not in client.get(url("conversation", conversation)).content.decode()
    )
    people.csat_record(conversation=conversation, score=4, comment="<b>Quick</b> help")
    actions = client.get(
        url("conversation", conversation), {"part": "actions"}, headers={"HX-Request": "true"}
    ).content.decode()
    assert "The user rated it <strong>4/5</strong>: “&lt;b&gt;Quick&lt;/b&gt; help”" in actions


def test_a_resolved_conversation_offers_to_reopen_it_not_a_plain_takeover(site, sam, client_of):
    conversation = open_conversation(site, "Thanks")
    client = client_of(sam)
    page = client.get(url("conversation", conversation)).content.decode()
    assert ">Take over</button>" in page and "Reopen and take over" not in page
    people.staff_resolve(conversation=conversation, staff=sam)
    page = client.get(url("conversation", conversation)).content.decode()
    assert ">Reopen and take over</button>" in page and ">Take over</button>" not in page
    assert ">Resolve</button>" not in page


def test_take_over_reply_hand_back_and_resolve(site, sam, client_of):
    conversation = open_conversation(site, "I need a person")
    people.request_human(conversation=conversation, source="user")
    client = client_of(sam)

    response = client.post(url("takeover", conversation), follow=True)
    assert "You have taken the conversation over." in response.content.decode()
    assert (fresh(conversation).status, fresh(conversation).owner_id) == ("human", sam.pk)

    response = client.post(url("reply", conversation), {"text": "  Hello, Sam here. "})
    assert response.status_code == 302
    staff = Message.objects.get(conversation=conversation, role="staff")
    assert (staff.text, staff.agent_name) == ("Hello, Sam here.", "Sam")

    client.post(url("handback", conversation), {"note": "Refund approved; tell them 3 days."})
    assert fresh(conversation).status == "bot"
    assert fresh(conversation).handback_note == "Refund approved; tell them 3 days."

    client.post(url("resolve", conversation))
    assert fresh(conversation).status == "resolved"


def test_a_takeover_of_a_colleagues_conversation_is_refused_in_plain_words(
    site, sam, ana, client_of
):
    conversation = open_conversation(site, "help")
    people.staff_take_over(conversation=conversation, staff=ana)
    response = client_of(sam).post(url("takeover", conversation), follow=True)
    assert "Ana has already taken this conversation over" in response.content.decode()
    assert fresh(conversation).owner_id == ana.pk


def test_refusals_of_empty_or_impossible_actions(site, sam, client_of):
    conversation = open_conversation(site, "help")
    client = client_of(sam)
    body = client.post(url("reply", conversation), {"text": "   "}, follow=True).content.decode()
    assert "This field is required." in body
    body = client.post(url("handback", conversation), {"note": ""}, follow=True).content.decode()
    assert (
        "The agents are answering this conversation; handing it back is not possible now." in body
    )
    body = client.post(url("notes", conversation), {"text": ""}, follow=True).content.decode()
    assert "This field is required." in body
    assert not Message.objects.filter(role="staff").exists()


def test_assign_to_a_colleague_and_refuse_someone_who_is_not_staff(site, sam, ana, client_of):
    supervisor(sam)  # assigning is a Supervisor's (chat/roles.py)
    conversation = open_conversation(site, "help")
    outsider = get_user_model().objects.create_user("joe", password="x")
    client = client_of(sam)
    page = client.get(url("conversation", conversation)).content.decode()
    assert f'<option value="{ana.pk}">' in page and f'value="{outsider.pk}"' not in page

    body = client.post(url("assign", conversation), {"to": outsider.pk}, follow=True)
    assert "Pick a member of staff from the list." in body.content.decode()
    assert fresh(conversation).owner_id is None

    client.post(url("assign", conversation), {"to": ana.pk})
    assert (fresh(conversation).status, fresh(conversation).owner_id) == ("human", ana.pk)


def test_a_private_note_is_stored(site, sam, client_of):
    conversation = open_conversation(site, "help")
    client_of(sam).post(url("notes", conversation), {"text": "Called them back."})
    assert list(StaffNote.objects.values_list("text", "author")) == [("Called them back.", sam.pk)]


def test_every_post_needs_the_csrf_token(site, sam):
    conversation = open_conversation(site, "help")
    client = Client(enforce_csrf_checks=True)
    client.force_login(sam)
    for name, data in (("takeover", {}), ("reply", {"text": "hi"}), ("notes", {"text": "n"})):
        assert client.post(url(name, conversation), data).status_code == 403
    assert fresh(conversation).status == "bot"
    assert not StaffNote.objects.exists()

    page = client.get(url("conversation", conversation))
    token = page.cookies["csrftoken"].value
    response = client.post(url("takeover", conversation), {"csrfmiddlewaretoken": token})
    assert response.status_code == 302 and fresh(conversation).owner_id == sam.pk


def test_pages_refuse_the_wrong_method(site, sam, client_of):
    conversation = open_conversation(site, "help")
    assert client_of(sam).get(url("takeover", conversation)).status_code == 405


# --- Canned replies ---------------------------------------------------------------------------


def test_canned_replies_are_offered_in_the_reply_form_escaped(site, sam, client_of):
    conversation = open_conversation(site, "help")
    page = client_of(sam).get(url("conversation", conversation)).content.decode()
    assert 'id="canned-pick"' not in page  # none made yet: no picker

    CannedReply.objects.create(
        title="Refund <b>policy</b>", text='Hi "there"\n<script>x()</script>'
    )
    CannedReply.objects.create(title="Apology", text="Sorry & thanks.")
    page = client_of(sam).get(url("conversation", conversation)).content.decode()
    assert '<div id="canned" class="so-inbox__canned" hidden>' in page  # inbox.js shows it
    assert "<script>x()</script>" not in page and "<b>policy</b>" not in page
    assert "Refund &lt;b&gt;policy&lt;/b&gt;</option>" in page
    assert 'data-text="Hi &quot;there&quot;\n&lt;script&gt;x()&lt;/script&gt;"' in page
    assert page.index(">Apology</option>") < page.index(">Refund &lt;b&gt;")  # by title
    # The picker has no name: choosing one never reaches the reply's POST.
    assert '<select id="canned-pick">' in page


def test_canned_replies_are_made_in_the_admin_with_their_author(sam):
    sam.is_superuser = True
    sam.save()
    client = Client()
    client.force_login(sam)
    response = client.post(
        reverse("admin:chat_cannedreply_add"), {"title": "Opening hours", "text": "9 to 5."}
    )
    assert response.status_code == 302
    reply = CannedReply.objects.get()
    assert (reply.title, reply.text, reply.created_by_id) == ("Opening hours", "9 to 5.", sam.pk)
    listing = client.get(reverse("admin:chat_cannedreply_changelist")).content.decode()
    assert "Opening hours" in listing


# --- Who is online --------------------------------------------------------------------------


def test_the_inbox_shows_the_staff_online_now_and_not_those_seen_long_ago(sam, ana, client_of):
    kim = staff_user("kim", "Kim")
    eve = staff_user("eve", "<i>Eve</i>")
    joe = get_user_model().objects.create_user("joe", password="x", first_name="Joe")
    now = timezone.now()
    StaffPresence.objects.create(user=ana, last_seen=now - timedelta(seconds=30))
    StaffPresence.objects.create(user=eve, last_seen=now)
    StaffPresence.objects.create(user=kim, last_seen=now - timedelta(minutes=10))  # stale
    StaffPresence.objects.create(user=joe, last_seen=now)  # not staff
    client = client_of(sam)
    people.staff_seen(user=sam)

    page = client.get(url("inbox")).content.decode()
    section = page[page.index('<section id="inbox-presence"') :]
    section = section[: section.index("</section>")]
    assert "3 online:" in section
    assert "Ana" in section and "Sam (you)" in section and "&lt;i&gt;Eve&lt;/i&gt;" in section
    assert "Kim" not in section and "Joe" not in section and "<i>" not in section
    assert section.index("Ana") < section.index("Sam")

    partial = client.get(url("presence"), headers={"HX-Request": "true"}).content.decode()
    assert partial.lstrip().startswith('<section id="inbox-presence"') and "Ana" in partial
    StaffPresence.objects.filter(user=ana).update(last_seen=now - timedelta(minutes=6))
    assert "Ana" not in client.get(url("presence")).content.decode()
    assert Client().get(url("presence")).status_code == 302  # staff only


# --- Email and webhook for a new waiting conversation ----------------------------------------


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict, bytes]] = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook_server():
    _Hook.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Hook.received
    server.shutdown()
    server.server_close()


def _notifications_done(timeout: float = 10) -> None:
    for thread in threading.enumerate():
        if thread.name == "staff-notify":
            thread.join(timeout)


@pytest.mark.django_db(transaction=True)
def test_a_new_waiting_conversation_is_emailed_and_posted_signed(webhook_server, settings):
    hook_url, received = webhook_server
    settings.SUPERORCH_STAFF_NOTIFY_EMAILS = ["team@example.com", " lead@example.com "]
    settings.SUPERORCH_STAFF_NOTIFY_WEBHOOK_URL = hook_url
    settings.SUPERORCH_STAFF_NOTIFY_WEBHOOK_SECRET = "hook-secret"
    settings.SUPERORCH_PUBLIC_URL = "https://chat.example.com"
    site = services.site_ensure_default()
    conversation = open_conversation(site, "my card number is 4111 1111")
    people.request_human(conversation=conversation, reason="billing question", source="user")
    _notifications_done()
    people.request_human(conversation=conversation, reason="again", source="user")  # waits already
    _notifications_done()

    link = f"https://chat.example.com/staff/c/{conversation.uuid}/"
    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert email.to == ["team@example.com", "lead@example.com"]
    assert email.subject == "[Super Orchestrator] A conversation is waiting for a person"
    assert "Reason: billing question" in email.body and link in email.body
    assert "How: The user asked." in email.body and "4111" not in email.body

    assert len(received) == 1
    headers, body = received[0]
    payload = json.loads(body)
    event = ConversationEvent.objects.get(conversation=conversation, to_status="waiting")
    assert payload == {
        "event": "conversation.waiting",
        "conversation": str(conversation.uuid),
        "site": site.key,
        "source": "user",
        "reason": "billing question",
        "asked_at": event.created_at.isoformat(),
        "url": link,
    }
    assert "4111" not in body.decode()
    assert headers["X-Superorch-Signature"] == webhook_signature(
        "hook-secret", headers["X-Superorch-Timestamp"], body
    )


def test_notifications_are_off_by_default(site, settings, django_capture_on_commit_callbacks):
    assert settings.SUPERORCH_STAFF_NOTIFY_EMAILS == []
    assert settings.SUPERORCH_STAFF_NOTIFY_WEBHOOK_URL == ""
    conversation = open_conversation(site, "help")
    with (
        mock.patch("chat.staff_notify._dispatch") as dispatch,
        django_capture_on_commit_callbacks(execute=True),
    ):
        people.request_human(conversation=conversation, source="user")
    dispatch.assert_not_called()
    assert mail.outbox == []


def test_with_a_broker_the_notification_is_a_celery_task_queued_once_committed(
    site, settings, django_capture_on_commit_callbacks
):
    from celery import current_app

    settings.SUPERORCH_STAFF_NOTIFY_EMAILS = ["team@example.com"]
    conversation = open_conversation(site, "help")
    with (
        mock.patch("orchestrator.queue.eager", return_value=False),
        mock.patch("orchestrator.queue.enqueue") as enqueue,
    ):
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            people.request_human(conversation=conversation, source="agent", reason="refund")
        enqueue.assert_not_called()  # not before the commit
        for callback in callbacks:
            callback()
    event = ConversationEvent.objects.get(conversation=conversation, to_status="waiting")
    enqueue.assert_called_once_with(staff_notify.NOTIFY_TASK, event.pk)
    assert staff_notify.NOTIFY_TASK in current_app.tasks
    current_app.tasks[staff_notify.NOTIFY_TASK].apply(args=[event.pk])  # the task itself
    assert "Reason: refund" in mail.outbox[0].body
    assert f"/staff/c/{conversation.uuid}/" in mail.outbox[0].body  # no public URL: a path


def test_a_failing_mail_server_or_webhook_is_logged_not_raised(site, settings, caplog):
    settings.SUPERORCH_STAFF_NOTIFY_EMAILS = ["team@example.com"]
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.SUPERORCH_STAFF_NOTIFY_WEBHOOK_URL = f"http://127.0.0.1:{port}/hook"
    conversation = open_conversation(site, "help")
    moved = people.request_human(conversation=conversation, source="errors")
    with mock.patch("chat.staff_notify.send_mail", side_effect=OSError("no mail server")):
        done = staff_notify.staff_notify_waiting(event_id=moved.event_id)
    assert done == {"email": "failed (OSError)", "webhook": "failed (URLError)"}
    assert "no mail server" in caplog.text and "webhook" in caplog.text
    assert staff_notify.staff_notify_waiting(event_id=0) == {}
