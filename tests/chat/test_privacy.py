"""Privacy controls (docs/privacy.md): per-site retention and its daily purge, a user's data
exported (command and staff API), and erasure that leaves no trace of the user in any text
column of the database, only a record without content."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.db import models
from django.test import Client
from django.utils import timezone

from chat import privacy, services, tasks, turns
from chat.models import (
    Attachment,
    Conversation,
    ConversationEvent,
    ErasureRecord,
    Feedback,
    Message,
    Site,
    StaffNote,
    Turn,
    TurnEvent,
)
from orchestrator import privacy as orchestrator_privacy
from orchestrator.models import (
    ActionCall,
    AgentRun,
    Approval,
    ContextEntry,
    StepRun,
    WorkflowRun,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path) -> Path:
    """The seeds' attachments are stored here (MEDIA_ROOT), one directory per test."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return Path(settings.MEDIA_ROOT)


def stored_files(media: Path) -> list[Path]:
    return [p for p in media.rglob("*") if p.is_file()] if media.exists() else []


BASE = "/api/staff/privacy/users"
PDF = b"%PDF-1.4\n1 0 obj\n<< >>\nendobj\n%%EOF\n"


# --- Seeding: one user with a unique marker in every place a user's data is stored ---------


class Person:
    def __init__(self, tag: str) -> None:
        self.id = f"uid-{tag}-7f3kq"
        self.name = f"Name {tag} Vbx9w"
        self.email = f"mail-{tag}-p2q8@example.org"
        self.text = f"my parcel {tag} text-m4z6r never came"

    @property
    def markers(self) -> list[str]:
        return [self.id, self.name, self.email, self.text]


def seed(site: Site, person: Person, *, verified: bool = True) -> Conversation:
    """A conversation of `person` with a row in every table that can hold their data (a
    verified user's second one needs verified=False: conversation_open reopens the first)."""
    conversation, _, _ = services.conversation_open(
        site=site,
        token=None,
        user={"id": person.id, "name": person.name, "email": person.email},
        context={"page": f"/account/{person.id}", "note": person.text},
        verified=verified,
    )
    conversation.contact_email = person.email
    conversation.csat_score, conversation.csat_comment = 2, person.text
    conversation.csat_at = timezone.now()
    conversation.handback_note = f"Asked for {person.name}"
    conversation.save()
    asked = Message.objects.create(conversation=conversation, role="user", text=person.text)
    attachment = Attachment(
        conversation=conversation,
        message=asked,
        name=f"{person.name} scan.pdf",
        kind="pdf",
        content_type="application/pdf",
        size=len(PDF),
        sha256=hashlib.sha256(PDF).hexdigest(),
    )
    attachment.file.save("ignored.pdf", ContentFile(PDF), save=False)
    attachment.save()
    turn = Turn.objects.create(conversation=conversation, reply_to=asked, error=person.text)
    answer = Message.objects.create(
        conversation=conversation, role="assistant", text=f"Hello {person.name}", turn=turn
    )
    TurnEvent.objects.create(turn=turn, kind="tool", data={"arguments": {"email": person.email}})
    Feedback.objects.create(message=answer, value="down", comment=person.text)
    ConversationEvent.objects.create(
        conversation=conversation,
        kind="status",
        from_status="bot",
        to_status="waiting",
        source="user",
        reason=person.text,
    )
    StaffNote.objects.create(conversation=conversation, text=f"{person.name} called twice")
    uuid = conversation.uuid
    ContextEntry.objects.create(conversation_id=uuid, key="customer", value={"id": person.id})
    ActionCall.objects.create(
        tool="lookup_invoice",
        conversation_id=uuid,
        turn_id=turn.uuid,
        arguments={"email": person.email},
        status="ok",
        output=person.text,
    )
    Approval.objects.create(
        conversation_id=uuid,
        turn_id=turn.uuid,
        tool="refund",
        agent_slug="billing",
        start_agent="triage",
        tool_call_id="call_1",
        arguments={"user": person.id},
        summary=f"Refund for {person.name}",
        by="staff",
        run_state=json.dumps({"input": person.text}),
        expires_at=timezone.now() + timedelta(hours=1),
    )
    AgentRun.objects.create(
        agent_slug="billing",
        conversation_id=uuid,
        turn_id=turn.uuid,
        provider="local",
        model_name="offline",
        error=person.text,
    )
    run = WorkflowRun.objects.create(
        workflow_slug="refund", definition={}, conversation_id=uuid, input=person.text
    )
    StepRun.objects.create(run=run, step_id="look", output=f"Invoice of {person.name}")
    # A workflow step's call: turn_id is the workflow run's id, no conversation id.
    ActionCall.objects.create(
        tool="lookup_invoice", turn_id=run.uuid, arguments={"user": person.id}, status="ok"
    )
    return conversation


def text_fields(model: type[models.Model]) -> list[models.Field]:
    kinds = (models.CharField, models.TextField, models.JSONField)
    return [f for f in model._meta.concrete_fields if isinstance(f, kinds)]


def tables_holding(markers: list[str]) -> dict[str, set[str]]:
    """Every model (of every installed app) with a text or JSON column holding one of the
    markers: {"app.Model": {"column", ...}}."""
    found: dict[str, set[str]] = {}
    for model in apps.get_models(include_auto_created=True):
        fields = text_fields(model)
        if not fields:
            continue
        names = [f.attname for f in fields]
        for row in model._base_manager.values_list(*names):
            for name, value in zip(names, row, strict=True):
                if value is None:
                    continue
                stored = value if isinstance(value, str) else json.dumps(value, default=str)
                if any(marker in stored for marker in markers):
                    found.setdefault(model._meta.label, set()).add(name)
    return found


EVERY_TABLE = {
    "chat.Conversation",
    "chat.Message",
    "chat.Turn",
    "chat.TurnEvent",
    "chat.Feedback",
    "chat.ConversationEvent",
    "chat.StaffNote",
    "chat.Attachment",
    "orchestrator.ContextEntry",
    "orchestrator.ActionCall",
    "orchestrator.Approval",
    "orchestrator.AgentRun",
    "orchestrator.WorkflowRun",
    "orchestrator.StepRun",
}


@pytest.fixture
def site(db) -> Site:
    return Site.objects.create(key="shop", name="Shop")


@pytest.fixture
def lee() -> Person:
    return Person("lee")


@pytest.fixture
def kim() -> Person:
    return Person("kim")


def superuser(username: str = "root"):
    return get_user_model().objects.create_superuser(username, password="x")


def staff(username: str = "sam"):
    return get_user_model().objects.create_user(username, password="x", is_staff=True)


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def erase(site_key: str, user_id: str) -> str:
    out = StringIO()
    call_command("user_data", "erase", "--site", site_key, "--user", user_id, "--yes", stdout=out)
    return out.getvalue()


# --- Erasure ---------------------------------------------------------------------------


def test_the_seed_puts_the_users_markers_in_every_table(site, lee):
    seed(site, lee)
    assert set(tables_holding(lee.markers)) == EVERY_TABLE


def test_after_an_erasure_no_text_column_in_the_database_holds_the_user(site, lee, kim):
    seed(site, lee)
    seed(site, lee, verified=False)  # a second conversation of the same id, unverified
    seed(site, kim)
    out = erase("shop", lee.id)
    assert "Erased 2 conversation(s)" in out
    assert tables_holding(lee.markers) == {}
    # Kim's data is all still there.
    assert set(tables_holding(kim.markers)) == EVERY_TABLE


@pytest.mark.parametrize(
    "skipped",
    # workflow_steps go with their workflow run anyway (a foreign key), so skipping their
    # own deletion leaves nothing behind; every other kind must be deleted by name.
    [name for name, _ in orchestrator_privacy.RECORDS if name != "workflow_steps"],
)
def test_the_scan_catches_a_skipped_deletion(site, lee, monkeypatch, skipped):
    seed(site, lee)
    kept = [(n, rows) for n, rows in orchestrator_privacy.RECORDS if n != skipped]
    monkeypatch.setattr(orchestrator_privacy, "RECORDS", kept)
    erase("shop", lee.id)
    assert tables_holding(lee.markers), f"skipping {skipped} left nothing the scan could see"


def test_an_erasure_removes_the_users_files_from_storage(
    site, lee, kim, media, django_capture_on_commit_callbacks
):
    seed(site, lee)
    seed(site, kim)
    kims = Attachment.objects.get(conversation__user_id=kim.id).file.name
    assert len(stored_files(media)) == 2
    with django_capture_on_commit_callbacks(execute=True):
        erase("shop", lee.id)
    assert stored_files(media) == [media / kims]  # Kim's file is still there
    assert ErasureRecord.objects.get().counts["attachments"] == 1


def test_a_failed_erasure_keeps_the_files(
    site, lee, media, monkeypatch, django_capture_on_commit_callbacks
):
    """The files leave storage once the deletion commits: a rollback keeps both."""
    seed(site, lee)

    def fails(**kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(ErasureRecord.objects, "create", fails)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        privacy.user_data_erase(site_key="shop", user_id=lee.id, by="command")
    assert Attachment.objects.count() == 1 and len(stored_files(media)) == 1


def test_the_erasure_record_keeps_no_content(site, lee):
    seed(site, lee)
    erase("shop", lee.id)
    record = ErasureRecord.objects.get()
    assert record.site == site and record.site_key == "shop" and record.by == "command"
    assert record.user_id_sha256 == hashlib.sha256(lee.id.encode()).hexdigest()
    assert record.counts["conversations"] == 1
    assert record.counts["messages"] == 2
    assert record.counts["context_entries"] == 1
    assert record.counts["action_calls"] == 2
    assert record.counts["approvals"] == record.counts["agent_runs"] == 1


def test_erasure_is_per_site(site, lee):
    other = Site.objects.create(key="other", name="Other shop")
    seed(site, lee)
    kept = seed(other, lee)
    erase("shop", lee.id)
    assert list(Conversation.objects.values_list("pk", flat=True)) == [kept.pk]
    assert ContextEntry.objects.filter(conversation_id=kept.uuid).exists()


def test_erasure_refuses_in_plain_words(site, lee):
    with pytest.raises(CommandError, match="There is no site with the key 'nope'"):
        erase("nope", lee.id)
    with pytest.raises(CommandError, match="Nothing is stored about user"):
        erase("shop", lee.id)
    conversation = seed(site, lee)
    with pytest.raises(CommandError, match="Add --yes"):  # stdin is not a terminal here
        call_command("user_data", "erase", "--site", "shop", "--user", lee.id, stdout=StringIO())
    Conversation.objects.filter(pk=conversation.pk).update(
        busy_until=timezone.now() + timedelta(minutes=1)
    )
    with pytest.raises(CommandError, match="try again in a minute"):
        erase("shop", lee.id)
    assert Conversation.objects.filter(pk=conversation.pk).exists()


# --- Export ----------------------------------------------------------------------------


def export(*args: str) -> str:
    out = StringIO()
    call_command("user_data", "export", *args, stdout=out)
    return out.getvalue()


def check_export(data: dict[str, Any], person: Person) -> None:
    assert data["site"] == {"key": "shop", "name": "Shop"} and data["user_id"] == person.id
    [conversation] = data["conversations"]
    assert conversation["user"] == {
        "id": person.id,
        "name": person.name,
        "email": person.email,
        "verified": True,
    }
    assert conversation["contact_email"] == person.email
    assert conversation["page_context"]["note"] == person.text
    assert conversation["csat"]["score"] == 2 and conversation["csat"]["comment"] == person.text
    asked, answer = conversation["messages"]
    assert asked["text"] == person.text and asked["role"] == "user"
    attached = asked["attachment"]
    assert attached["name"] == f"{person.name} scan.pdf" and attached["kind"] == "pdf"
    assert attached["size"] == len(PDF) and attached["content_type"] == "application/pdf"
    assert attached["storage_path"] == Attachment.objects.get(uuid=attached["uuid"]).file.name
    assert answer["attachment"] is None
    assert answer["feedback"] == {
        "value": "down",
        "comment": person.text,
        "at": answer["feedback"]["at"],
    }
    assert conversation["staff_notes"][0]["text"] == f"{person.name} called twice"
    assert conversation["status_changes"][0]["reason"] == person.text
    assert conversation["turn_events"][0]["data"] == {"arguments": {"email": person.email}}
    assert conversation["context"] == [
        {
            "key": "customer",
            "value": {"id": person.id},
            "updated_at": conversation["context"][0]["updated_at"],
        }
    ]
    arguments = [call["arguments"] for call in conversation["action_calls"]]
    assert arguments == [{"email": person.email}, {"user": person.id}]
    assert conversation["approvals"][0]["arguments"] == {"user": person.id}
    assert conversation["workflow_runs"][0]["input"] == person.text


def test_export_prints_everything_stored_about_the_user(site, lee, kim):
    seed(site, lee)
    seed(site, kim)
    data = json.loads(export("--site", "shop", "--user", lee.id))
    check_export(data, lee)
    assert kim.id not in json.dumps(data)


def test_export_writes_a_file(site, lee, tmp_path):
    seed(site, lee)
    target = tmp_path / "lee.json"
    out = export("--site", "shop", "--user", lee.id, "--output", str(target))
    assert out.strip() == f"Wrote 1 conversation(s) of this user to {target}."
    check_export(json.loads(target.read_text(encoding="utf-8")), lee)


def test_export_refuses_in_plain_words(site, lee, tmp_path):
    with pytest.raises(CommandError, match="Nothing is stored about user 'uid-lee-7f3kq'"):
        export("--site", "shop", "--user", lee.id)
    with pytest.raises(CommandError, match="anonymous visitors have none"):
        export("--site", "shop", "--user", "")
    seed(site, lee)
    with pytest.raises(CommandError, match="Could not write"):
        export("--site", "shop", "--user", lee.id, "--output", str(tmp_path / "no" / "x.json"))


# --- Retention -------------------------------------------------------------------------


def test_retention_is_empty_or_1_to_3650_days(site):
    for days in (None, 1, 3650):
        site.retention_days = days
        site.full_clean()
    for days in (0, 3651):
        site.retention_days = days
        with pytest.raises(ValidationError) as refused:
            site.full_clean()
        assert "retention_days" in refused.value.message_dict


def age(conversation: Conversation, *, days: int, messages_days: int | None = None) -> None:
    """Make the conversation (and, unless told otherwise, its messages) this old."""
    then = timezone.now() - timedelta(days=days)
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=then, created_at=then)
    msg_then = then if messages_days is None else timezone.now() - timedelta(days=messages_days)
    Message.objects.filter(conversation=conversation).update(created_at=msg_then)


def test_purge_deletes_conversations_idle_longer_than_their_sites_retention(site, lee, kim):
    site.retention_days = 30
    site.save()
    forever = Site.objects.create(key="forever", name="Forever")
    zero = Site.objects.create(key="zero", name="Zero", retention_days=0)
    old = seed(site, lee)
    age(old, days=31)
    recent_message = seed(site, kim)
    age(recent_message, days=40, messages_days=2)  # the user wrote two days ago
    fresh = seed(site, Person("new"))
    age(fresh, days=29)
    busy = seed(site, Person("busy"))
    age(busy, days=60)
    Conversation.objects.filter(pk=busy.pk).update(busy_until=timezone.now() + timedelta(minutes=1))
    kept_forever = [seed(forever, Person("f")), seed(zero, Person("z"))]
    for conversation in kept_forever:
        age(conversation, days=4000)

    result = privacy.purge_expired()

    assert result["conversations"] == 1 and result["sites"] == {"shop": 1}
    assert result["counts"]["messages"] == 2 and result["counts"]["context_entries"] == 1
    assert not Conversation.objects.filter(pk=old.pk).exists()
    assert tables_holding(lee.markers) == {}
    left = set(Conversation.objects.values_list("pk", flat=True))
    assert left == {recent_message.pk, fresh.pk, busy.pk, *(c.pk for c in kept_forever)}
    assert ErasureRecord.objects.count() == 0  # retention is not an erasure request


def test_the_purge_removes_the_files_of_what_it_deletes(
    site, lee, kim, media, django_capture_on_commit_callbacks
):
    site.retention_days = 30
    site.save()
    age(seed(site, lee), days=31)
    seed(site, kim)
    with django_capture_on_commit_callbacks(execute=True):
        result = privacy.purge_expired()
    assert result["counts"]["attachments"] == 1
    assert stored_files(media) == [media / Attachment.objects.get().file.name]


def test_purge_takes_now_and_the_command_says_what_it_did(site, lee):
    site.retention_days = 10
    site.save()
    seed(site, lee)
    out = StringIO()
    call_command("purge_expired", stdout=out)
    assert out.getvalue().strip() == (
        "No conversation is past its site's retention; nothing deleted."
    )
    assert privacy.purge_expired(now=timezone.now() + timedelta(days=9))["conversations"] == 0
    later = timezone.now() + timedelta(days=11)
    assert privacy.conversations_expired(site=site, now=later).count() == 1
    age(Conversation.objects.get(), days=11)
    out = StringIO()
    call_command("purge_expired", stdout=out)
    assert out.getvalue().strip() == (
        "Deleted 1 conversation(s) past their site's retention (shop: 1), with 2 message(s) "
        "and everything else stored about them."
    )


def test_the_purge_runs_daily_in_celery_beat(site, lee):
    entry = settings.CELERY_BEAT_SCHEDULE["purge-expired"]
    assert entry["task"] == tasks.PURGE_TASK == tasks.purge_expired_task.name
    assert entry["schedule"] == 24 * 60 * 60
    site.retention_days = 1
    site.save()
    age(seed(site, lee), days=2)
    tasks.purge_expired_task.delay()  # eager in the tests, as without a broker
    assert not Conversation.objects.exists()


# --- The staff API ---------------------------------------------------------------------


def test_the_api_exports_for_superusers(site, lee):
    seed(site, lee)
    response = logged_in(superuser()).get(f"{BASE}/shop/{lee.id}/")
    assert response.status_code == 200, response.content
    check_export(response.json(), lee)


def test_the_api_is_for_admins_in_plain_words(site, lee):
    seed(site, lee)
    for method in ("get", "delete"):
        response = getattr(logged_in(staff()), method)(f"{BASE}/shop/{lee.id}/")
        assert response.status_code == 403
        assert response.json() == {"error": privacy_api_words()}
        get_user_model().objects.filter(username="sam").delete()
    response = Client().get(f"{BASE}/shop/{lee.id}/")
    assert response.status_code == 401 and "error" in response.json()
    assert Conversation.objects.count() == 1
    # A member of the Admin group (not a superuser) may.
    from django.contrib.auth.models import Group

    admin = staff()
    admin.groups.add(Group.objects.get(name="Admin"))
    assert logged_in(admin).get(f"{BASE}/shop/{lee.id}/").status_code == 200


def privacy_api_words() -> str:
    from chat.privacy_api import ADMINS_ONLY

    return ADMINS_ONLY


def test_the_api_erases_and_then_finds_nothing(site, lee, kim):
    seed(site, lee)
    seed(site, kim)
    client = logged_in(superuser())
    response = client.delete(f"{BASE}/shop/{lee.id}/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["erased"]["conversations"] == 1
    assert body["record"]["by"] == "root"
    assert body["record"]["user_id_sha256"] == hashlib.sha256(lee.id.encode()).hexdigest()
    record = ErasureRecord.objects.get()
    assert record.staff.username == "root" and record.by == "root"
    assert tables_holding(lee.markers) == {}
    for method in ("get", "delete"):
        response = getattr(client, method)(f"{BASE}/shop/{lee.id}/")
        assert response.status_code == 404
        assert response.json() == {
            "error": f"Nothing is stored about user {lee.id!r} on site 'shop'."
        }
    response = client.get(f"{BASE}/nope/{kim.id}/")
    assert response.status_code == 404
    assert response.json() == {"error": "There is no site with the key 'nope'."}


def test_the_api_takes_user_ids_with_slashes_and_refuses_while_busy(site):
    person = Person("a/b")
    conversation = seed(site, person)
    client = logged_in(superuser())
    assert client.get(f"{BASE}/shop/{person.id}/").json()["user_id"] == person.id
    Conversation.objects.filter(pk=conversation.pk).update(
        busy_until=timezone.now() + timedelta(minutes=1)
    )
    response = client.delete(f"{BASE}/shop/{person.id}/")
    assert response.status_code == 409 and "try again in a minute" in response.json()["error"]


def test_the_admin_shows_erasure_records_read_only(site, lee):
    seed(site, lee)
    erase("shop", lee.id)
    record = ErasureRecord.objects.get()
    client = logged_in(superuser())
    page = client.get("/admin/chat/erasurerecord/")
    assert page.status_code == 200 and record.user_id_sha256 in page.content.decode()
    assert client.get(f"/admin/chat/erasurerecord/{record.pk}/change/").status_code == 200
    assert client.get("/admin/chat/erasurerecord/add/").status_code == 403
    assert (
        lee.id not in client.get(f"/admin/chat/erasurerecord/{record.pk}/change/").content.decode()
    )


# --- The real path: a chat over the socket, then erasure --------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_real_chat_erased_leaves_nothing_of_the_user(team, connect):
    """Not seeded by hand: what the socket, the turn, the agents and the people flow store
    for a user (whatever tables that touches), erased, leaves no marker anywhere."""
    person = Person("e2e")
    comm = await connect()
    user = {"id": person.id, "name": person.name, "email": person.email}
    context = {"page": f"/account/{person.id}", "plan": person.text}
    await comm.send_json_to(
        {"type": "session.start", "site": "demo", "user": user, "context": context}
    )
    assert (await comm.receive_json_from(timeout=5))["type"] == "session.ready"
    await comm.send_json_to(
        {"type": "message.send", "id": "c-1", "text": f"I was charged twice, {person.text}"}
    )
    frames = []
    while not frames or frames[-1]["type"] != "turn.done":
        frames.append(await comm.receive_json_from(timeout=10))
    reply = next(f for f in frames if f["type"] == "message.done")["message"]["id"]
    await comm.send_json_to(
        {"type": "feedback", "message": reply, "value": "down", "comment": person.text}
    )
    assert (await comm.receive_json_from(timeout=5))["type"] == "feedback.ack"
    await comm.send_json_to({"type": "contact.email", "email": person.email})
    await comm.send_json_to({"type": "human.request", "reason": person.text})
    await comm.send_json_to({"type": "context.update", "context": {"note": person.text}})
    await asyncio.sleep(0.3)
    await turns.wait_idle(timeout=10)
    await comm.disconnect()

    before = await sync_to_async(tables_holding)(person.markers)
    stored = {"chat.Conversation", "chat.Message", "chat.Feedback", "chat.ConversationEvent"}
    assert stored <= set(before)
    out = await sync_to_async(erase)("demo", person.id)
    assert "Erased 1 conversation(s)" in out
    assert await sync_to_async(tables_holding)(person.markers) == {}
