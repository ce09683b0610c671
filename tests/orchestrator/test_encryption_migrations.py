"""The encryption migrations on a database with rows from before them: forwards every
text and JSON value becomes a token (and messages get their search index), backwards
they are plain again, as they were."""

from __future__ import annotations

import json
import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def _admin():
    from django.contrib.auth import get_user_model

    # An Admin sees every site (chat.roles), and asks nothing of the database for it.
    return get_user_model()(username="admin", is_staff=True, is_active=True, is_superuser=True)


ADMIN = _admin()

BEFORE = [("chat", "0013_site_staff"), ("orchestrator", "0008_run_rollups")]
AFTER = [
    ("chat", "0015_languages"),
    ("orchestrator", "0009_encryption"),
]  # the latest: the models as they are


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def column(sql: str, *params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_the_migrations_encrypt_existing_rows_and_decrypt_them_backwards():
    try:
        apps = migrate(BEFORE)
        Site = apps.get_model("chat", "Site")
        Conversation = apps.get_model("chat", "Conversation")
        Message = apps.get_model("chat", "Message")
        ContextEntry = apps.get_model("orchestrator", "ContextEntry")
        site = Site.objects.create(key="old", name="Old")
        conversation = Conversation.objects.create(
            site=site, token_hash="t" * 64, page_context={"page": "/orders"}
        )
        message = Message.objects.create(
            conversation=conversation, role="user", text="my parcel never came"
        )
        entry = ContextEntry.objects.create(
            conversation_id=uuid.uuid4(), key="plan", value={"tier": "pro"}
        )

        migrate(AFTER)
        text = column("SELECT text FROM chat_message WHERE id = %s", message.pk)
        context = column(
            "SELECT page_context FROM chat_conversation WHERE id = %s", conversation.pk
        )
        value = column("SELECT value FROM orchestrator_contextentry WHERE id = %s", entry.pk)
        assert all(v.startswith("gAAAAA") for v in (text, context, value))
        from chat import inbox
        from chat.models import Conversation as Live

        assert Live.objects.get(pk=conversation.pk).page_context == {"page": "/orders"}
        assert [c.pk for c in inbox.inbox_conversations(staff=ADMIN, query="parcel")] == [
            conversation.pk
        ]

        migrate(BEFORE)
        assert column("SELECT text FROM chat_message WHERE id = %s", message.pk) == (
            "my parcel never came"
        )
        stored = column("SELECT value FROM orchestrator_contextentry WHERE id = %s", entry.pk)
        assert json.loads(stored) == {"tier": "pro"}
    finally:
        migrate([("chat", _latest("chat")), ("orchestrator", _latest("orchestrator"))])


def _latest(app: str) -> str:
    executor = MigrationExecutor(connection)
    return max(name for label, name in executor.loader.graph.leaf_nodes() if label == app)
