"""Encryption at rest (orchestrator.crypto_fields, docs/privacy.md): the database holds
ciphertext, the code reads plain values, `rotate_keys` moves every value to the first key,
a value no key opens reads as a placeholder (never a 500), and the migrations' data step
encrypts rows stored in clear (and decrypts them backwards)."""

from __future__ import annotations

import json
import logging

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.exceptions import FieldError, ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.urls import reverse

from chat import inbox, services
from chat.models import Conversation, Feedback, Message, StaffNote
from orchestrator import crypto_fields, crypto_rotation
from orchestrator.models import ActionCall, ContextEntry
from superorch_site.settings.base import _check_field_keys
from tests.chat.test_search import ADMIN

pytestmark = pytest.mark.django_db

OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()
SECRET = "Lee's parcel 7731 never came"


def raw(table: str, column: str, pk: int) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608
        return cursor.fetchone()[0]


def write_raw(table: str, column: str, pk: int, value: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {column} = %s WHERE id = %s", [value, pk])  # noqa: S608


@pytest.fixture
def site(db):
    return services.site_ensure_default()


@pytest.fixture
def conversation(site):
    conversation, _, _ = services.conversation_open(
        site=site, token=None, user={}, context={"page": "/orders", "note": SECRET}
    )
    return conversation


@pytest.fixture
def message(conversation):
    return Message.objects.create(conversation=conversation, role="user", text=SECRET)


def test_the_columns_hold_ciphertext_and_the_code_reads_plain_values(conversation, message):
    note = StaffNote.objects.create(conversation=conversation, text=SECRET)
    entry = ContextEntry.objects.create(conversation_id=conversation.uuid, key="k", value=[SECRET])
    call = ActionCall.objects.create(tool="t", arguments={"q": SECRET}, output=SECRET, status="ok")
    stored = {
        ("chat_message", "text", message.pk),
        ("chat_staffnote", "text", note.pk),
        ("chat_conversation", "page_context", conversation.pk),
        ("orchestrator_contextentry", "value", entry.pk),
        ("orchestrator_actioncall", "arguments", call.pk),
        ("orchestrator_actioncall", "output", call.pk),
    }
    for table, column, pk in stored:
        value = raw(table, column, pk)
        assert value.startswith(crypto_fields.TOKEN_PREFIX), (table, column)
        assert "7731" not in value and "parcel" not in value
    assert Message.objects.get(pk=message.pk).text == SECRET
    assert StaffNote.objects.get(pk=note.pk).text == SECRET
    assert Conversation.objects.get(pk=conversation.pk).page_context["note"] == SECRET
    assert ContextEntry.objects.get(pk=entry.pk).value == [SECRET]
    assert ActionCall.objects.get(pk=call.pk).arguments == {"q": SECRET}
    # update() goes through the field too
    Conversation.objects.filter(pk=conversation.pk).update(page_context={"page": "/cart"})
    assert raw("chat_conversation", "page_context", conversation.pk).startswith("gAAAAA")
    assert Conversation.objects.get(pk=conversation.pk).page_context == {"page": "/cart"}


def test_empty_values_stay_empty_and_null_stays_null(conversation):
    entry = ContextEntry.objects.create(conversation_id=conversation.uuid, key="k", value=None)
    assert raw("orchestrator_contextentry", "value", entry.pk) is None
    assert raw("chat_conversation", "handback_note", conversation.pk) == ""
    assert Conversation.objects.filter(handback_note="").count() == 1  # "" can be compared


def test_lookups_that_cannot_work_on_ciphertext_are_refused(message):
    with pytest.raises(FieldError, match="encrypted"):
        Message.objects.filter(text=SECRET).exists()
    with pytest.raises(FieldError):
        Message.objects.filter(text__icontains="parcel").exists()


def test_one_keyring_per_key_set(settings):
    settings.SUPERORCH_FIELD_KEYS = [OLD]
    assert crypto_fields.keyring() is crypto_fields.keyring()
    settings.SUPERORCH_FIELD_KEYS = [NEW, OLD]
    assert crypto_fields.keyring().primary._signing_key == Fernet(NEW)._signing_key


def test_without_keys_one_is_derived_from_the_secret_key_and_its_fallbacks(settings):
    settings.SUPERORCH_FIELD_KEYS = []
    settings.SECRET_KEY_FALLBACKS = ["an-older-secret"]
    assert crypto_fields.configured_keys() == (
        crypto_fields.derived_key(settings.SECRET_KEY),
        crypto_fields.derived_key("an-older-secret"),
    )


def test_a_key_that_is_not_a_fernet_key_stops_the_settings_in_plain_words():
    _check_field_keys([OLD, NEW])
    with pytest.raises(ImproperlyConfigured, match="key 2 is not a Fernet key"):
        _check_field_keys([OLD, "not-a-key"])


def test_a_value_no_key_opens_reads_as_a_placeholder_and_is_logged(
    settings, conversation, message, caplog
):
    settings.SUPERORCH_FIELD_KEYS = [OLD]
    Message.objects.filter(pk=message.pk).update(text=SECRET)  # sealed with OLD
    conversation.page_context = {"page": "/x"}
    conversation.save()
    settings.SUPERORCH_FIELD_KEYS = [NEW]  # OLD dropped too soon
    crypto_fields._warned.clear()
    with caplog.at_level(logging.WARNING, logger="orchestrator.crypto_fields"):
        assert Message.objects.get(pk=message.pk).text == crypto_fields.UNREADABLE
        assert Conversation.objects.get(pk=conversation.pk).page_context == {
            "unreadable": crypto_fields.UNREADABLE
        }
    assert "chat.Message.text" in caplog.text and SECRET not in caplog.text

    from django.contrib.auth import get_user_model

    staff = get_user_model().objects.create_superuser("root", password="x")
    client = Client()
    client.force_login(staff)
    for path in (
        reverse("staff:conversation", args=[conversation.uuid]),
        reverse("staff:inbox"),
        reverse("admin:chat_conversation_change", args=[conversation.pk]),
        reverse("admin:chat_message_change", args=[message.pk]),
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "cannot be read" in response.content.decode(), path


def test_rotation_moves_every_value_to_the_new_key_and_keeps_it_readable(
    settings, conversation, message
):
    settings.SUPERORCH_FIELD_KEYS = [OLD]
    message.save()  # sealed with OLD
    Feedback.objects.create(message=message, value="down", comment=SECRET)
    conversation.save()
    before = raw("chat_message", "text", message.pk)
    Fernet(OLD).decrypt(before.encode())

    settings.SUPERORCH_FIELD_KEYS = [NEW, OLD]
    out = call_command_output("rotate_keys", "--batch-size", "1")
    after = raw("chat_message", "text", message.pk)
    assert after != before
    assert Fernet(NEW).decrypt(after.encode()).decode() == SECRET
    with pytest.raises(InvalidToken):
        Fernet(OLD).decrypt(after.encode())
    assert "chat_message.text: 1 rotated" in out and "chat_feedback.comment: 1 rotated" in out

    settings.SUPERORCH_FIELD_KEYS = [NEW]  # the old key dropped: all still readable
    assert Message.objects.get(pk=message.pk).text == SECRET
    assert Feedback.objects.get().comment == SECRET
    assert Conversation.objects.get(pk=conversation.pk).page_context["note"] == SECRET
    assert [c.pk for c in inbox.inbox_conversations(staff=ADMIN, query="parcel")] == [
        conversation.pk
    ]

    again = call_command_output("rotate_keys")  # idempotent: nothing left to do
    assert "0 re-encrypted with the first key" in again
    assert raw("chat_message", "text", message.pk) == after


def test_rotate_keys_reports_values_no_key_opens_and_fails(settings, message, caplog):
    settings.SUPERORCH_FIELD_KEYS = [OLD]
    Message.objects.filter(pk=message.pk).update(text=SECRET)
    settings.SUPERORCH_FIELD_KEYS = [NEW]  # neither OLD nor the fixtures' derived key
    with pytest.raises(CommandError, match=r"2 value\(s\) could not be decrypted"):
        call_command_output("rotate_keys")
    assert f"chat_message.text: 1 value(s) no configured key opens (ids {message.pk})" in (
        caplog.text
    )
    assert Fernet(OLD).decrypt(raw("chat_message", "text", message.pk).encode())  # untouched


def test_rotate_keys_prints_a_new_key_and_the_derived_one(settings, message):
    key = call_command_output("rotate_keys", "--new-key").strip()
    assert crypto_fields.valid_key(key)
    derived = call_command_output("rotate_keys", "--derived-key").strip()
    settings.SUPERORCH_FIELD_KEYS = [key, derived]  # moving off the derived key
    assert Message.objects.get(pk=message.pk).text == SECRET
    call_command_output("rotate_keys")
    settings.SUPERORCH_FIELD_KEYS = [key]
    assert Message.objects.get(pk=message.pk).text == SECRET


def test_json_values_serialise_as_values(conversation):
    from django.core import serializers

    data = serializers.serialize("json", Conversation.objects.filter(pk=conversation.pk))
    assert '"page_context": {"page": "/orders"' in data
    Conversation.objects.all().delete()
    for obj in serializers.deserialize("json", data):
        obj.save()
    assert Conversation.objects.get().page_context == {"page": "/orders", "note": SECRET}


def test_the_migration_step_encrypts_rows_stored_in_clear_and_decrypts_them_back(
    conversation, message
):
    """As rows are before the migration: plain text and plain JSON in the columns."""
    write_raw("chat_message", "text", message.pk, SECRET)
    write_raw("chat_message", "search_index", message.pk, "")
    write_raw("chat_conversation", "page_context", conversation.pk, json.dumps({"page": "/p"}))
    assert Message.objects.get(pk=message.pk).text == SECRET  # read as it is meanwhile

    columns = crypto_rotation.encrypted_columns(app_label="chat")
    counts = crypto_rotation.reseal_all(columns)
    assert counts["chat_message.text"]["encrypted"] == 1
    assert raw("chat_message", "text", message.pk).startswith("gAAAAA")
    assert Conversation.objects.get(pk=conversation.pk).page_context == {"page": "/p"}
    assert [c.pk for c in inbox.inbox_conversations(staff=ADMIN, query="parcel")] == [
        conversation.pk
    ]

    crypto_rotation.reseal_all(columns, decrypt=True)  # the migration backwards
    assert raw("chat_message", "text", message.pk) == SECRET
    assert json.loads(raw("chat_conversation", "page_context", conversation.pk)) == {"page": "/p"}


def test_every_column_holding_peoples_words_is_encrypted():
    labels = {c.label for c in crypto_rotation.encrypted_columns()}
    assert {
        "chat_message.text",
        "chat_staffnote.text",
        "chat_conversation.handback_note",
        "chat_conversation.csat_comment",
        "chat_conversation.page_context",
        "chat_feedback.comment",
        "chat_turnevent.data",
        "chat_conversationevent.reason",
        "orchestrator_contextentry.value",
        "orchestrator_workflowrun.input",
        "orchestrator_workflowrun.result",
        "orchestrator_steprun.output",
        "orchestrator_actioncall.arguments",
        "orchestrator_actioncall.output",
        "orchestrator_approval.arguments",
        "orchestrator_approval.run_state",
    } <= labels


def call_command_output(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()
