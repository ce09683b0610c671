"""The staff search over encrypted messages (chat.search, docs/privacy.md): the blind index
finds whole words and word beginnings, case and accents ignored, every word of the query
in one message; never the middle of a word; it keeps working through a key rotation, in
the inbox, the staff API and the admin, in a fixed number of queries."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chat import inbox, search, services
from chat.models import Conversation, Message
from orchestrator import crypto_fields


def _admin():
    from django.contrib.auth import get_user_model

    # An Admin sees every site (chat.roles), and asks nothing of the database for it.
    return get_user_model()(username="admin", is_staff=True, is_active=True, is_superuser=True)


ADMIN = _admin()

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(db):
    return services.site_ensure_default()


def conversation_with(site, *texts: str) -> Conversation:
    conversation, _, _ = services.conversation_open(site=site, token=None, user={}, context={})
    for text in texts:
        Message.objects.create(conversation=conversation, role="user", text=text)
    return conversation


def found(query: str) -> list[int]:
    return sorted(c.pk for c in inbox.inbox_conversations(staff=ADMIN, query=query))


def test_words_and_beginnings_are_found_case_and_accents_ignored(site):
    refund = conversation_with(site, "Where is my REFUND? Ça coûte 40 €, order F-1001.")
    other = conversation_with(site, "My password reset mail never came")
    assert found("refund") == [refund.pk]
    assert found("refunds") == []  # a longer word is not a beginning of "refund"
    assert found("ref") == [refund.pk]  # the first three letters and more
    assert found("cout") == [refund.pk] and found("ÇA") == [refund.pk]
    assert found("f-1001") == [refund.pk]  # "f" is ignored, "1001" found
    assert found("password mail") == [other.pk]
    assert found("password refund") == []  # every word, in one message
    assert found("fund") == []  # never the middle of a word
    assert found("?") == [] and found("a") == []  # nothing to search for


def test_long_words_are_found_by_their_first_eight_letters(site):
    conversation = conversation_with(site, "The subscription renewed")
    assert found("subscription") == [conversation.pk]
    assert found("subscrip") == [conversation.pk]
    assert found("subscriptions") == [conversation.pk]  # past 8 letters: a beginning


def test_the_index_holds_keyed_digests_not_words(site, settings):
    conversation = conversation_with(site, "parcel parcel")
    index = Message.objects.get(conversation=conversation).search_index
    assert "parcel" not in index
    digest = crypto_fields.keyring().digest("parcel")
    assert index.count(f" {digest} ") == 1  # a word once, whatever its count
    settings.SUPERORCH_FIELD_KEYS = [Fernet.generate_key().decode()]
    assert crypto_fields.keyring().digest("parcel") != digest  # keyed: no rainbow table


def test_a_staff_text_change_rewrites_the_index(site):
    conversation = conversation_with(site, "first words")
    message = Message.objects.get(conversation=conversation)
    message.text = "second thoughts"
    message.save(update_fields=["text"])
    assert found("second") == [conversation.pk] and found("first") == []


def test_bulk_create_and_update_or_create_write_the_index(site):
    """The turns store replies with update_or_create (a retry replaces the text)."""
    import uuid

    conversation = conversation_with(site)
    Message.objects.bulk_create([Message(conversation=conversation, role="user", text="bulk")])
    key = uuid.uuid4()
    first = {"conversation": conversation, "role": "assistant", "text": "first"}
    Message.objects.update_or_create(uuid=key, defaults={"text": "first"}, create_defaults=first)
    Message.objects.update_or_create(uuid=key, defaults={"text": "zebra later"})
    assert found("bulk") == found("zebra") == [conversation.pk]
    assert found("first") == []


def test_search_keeps_working_while_a_key_is_rotated(site, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SUPERORCH_FIELD_KEYS = [old]
    before = conversation_with(site, "an invoice from before")
    settings.SUPERORCH_FIELD_KEYS = [new, old]  # rotate_keys not run yet
    after = conversation_with(site, "an invoice from after")
    assert found("invoice") == sorted([before.pk, after.pk])


def test_one_query_finds_the_rows_whatever_the_number_of_words(site):
    conversation_with(site, "one two three four five six")
    with CaptureQueriesContext(connection) as one_word:
        assert len(list(inbox.inbox_conversations(staff=ADMIN, query="one"))) == 1
    with CaptureQueriesContext(connection) as six_words:
        assert (
            len(list(inbox.inbox_conversations(staff=ADMIN, query="one two three four five six")))
            == 1
        )
    assert len(one_word) == len(six_words) == 1


def test_the_inbox_page_and_the_admin_search_by_words(site):
    refund = conversation_with(site, "I want a refund for May")
    conversation_with(site, "password reset")
    staff = get_user_model().objects.create_superuser("root", password="x")
    client = Client()
    client.force_login(staff)
    page = client.get(reverse("staff:inbox"), {"q": "refund may"}).content.decode()
    assert f'data-conversation="{refund.uuid}"' in page and "password reset" not in page
    admin = client.get(reverse("admin:chat_conversation_changelist"), {"q": "refund"})
    assert admin.status_code == 200 and "1 result" in admin.content.decode()
    messages = client.get(reverse("admin:chat_message_changelist"), {"q": "passw"})
    assert messages.status_code == 200 and "password reset" in messages.content.decode()
    by_uuid = client.get(reverse("admin:chat_conversation_changelist"), {"q": str(refund.uuid)})
    assert "1 result" in by_uuid.content.decode()  # the other search fields still work


def test_search_condition_is_none_without_words():
    assert search.search_condition("- ! a") is None
    assert not search.messages_matching("").exists()
