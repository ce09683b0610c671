"""Checks that the integration run really uses PostgreSQL and Redis, and what only they do.

Run with superorch_site.settings.integration (see `make integration` / .ci/run);
the consumer and runtime suites run on the same settings beside these tests.
"""

import asyncio
import uuid

import pytest
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection

from orchestrator import selectors

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _only_on_real_services():
    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        pytest.skip("needs superorch_site.settings.integration")


def test_the_database_is_postgresql():
    assert connection.vendor == "postgresql"


def test_the_channel_layer_is_redis():
    assert type(get_channel_layer()).__name__ == "RedisChannelLayer"


def test_knowledge_search_on_postgres_ranks_the_right_article(team):
    # The same section ranking as on SQLite (orchestrator/knowledge.py), on real rows.
    results = selectors.knowledge_search(
        agent_slug="billing", query="I was charged twice for my subscription"
    )
    assert results and "charged twice" in results[0]["title"].lower()
    assert selectors.knowledge_search(agent_slug="billing", query="zzzz qqqq") == []


async def test_group_messages_cross_separate_redis_connections():
    """Two layer instances (as two server processes would have) exchange a group message."""
    from channels_redis.core import RedisChannelLayer

    sender = RedisChannelLayer(hosts=[settings.REDIS_URL])
    receiver = RedisChannelLayer(hosts=[settings.REDIS_URL])
    group = f"chat.{uuid.uuid4()}"
    channel = await receiver.new_channel()
    await receiver.group_add(group, channel)
    await sender.group_send(group, {"type": "chat.frame", "text": "hello"})
    message = await asyncio.wait_for(receiver.receive(channel), 5)
    assert message["text"] == "hello"
    await receiver.group_discard(group, channel)
    await sender.close_pools()
    await receiver.close_pools()


def test_concurrent_claims_take_the_lease_once(team):
    """The turn lease is an atomic conditional UPDATE: of many racing claims, one wins."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    from chat.services import conversation_claim, conversation_open, site_ensure_default

    conv, _, _ = conversation_open(site=site_ensure_default(), token=None, user={}, context={})

    def claim(_):
        try:
            return conversation_claim(conversation_id=conv.pk)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(claim, range(16)))
    assert results.count(True) == 1


def test_concurrent_context_updates_lose_nothing():
    """Parallel workflow steps merge into one key at once: the row lock keeps every write."""
    import threading

    from orchestrator import services
    from orchestrator.models import ContextEntry

    conversation = uuid.uuid4()
    start = threading.Barrier(3)

    def writer(prefix: str) -> None:
        start.wait()
        try:
            for i in range(25):
                services.context_update(
                    conversation_id=conversation, key="notes", value={f"{prefix}{i}": i}
                )
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(p,)) for p in "abc"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    value = ContextEntry.objects.get(conversation_id=conversation, key="notes").value
    assert len(value) == 75
