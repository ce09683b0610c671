"""Rate limits (the `limits` library, async API): messages per conversation, and per
client (chat.clients): messages and new conversations; staff API requests per member
of staff; attachments per conversation.

Memory storage in one process; Redis (SUPERORCH_RATE_LIMIT_STORAGE) across processes.
"""

from __future__ import annotations

import asyncio
import weakref

from django.conf import settings
from limits import parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter as SyncMovingWindowRateLimiter

# One limiter per event loop: a Redis client's connections belong to the loop that made them.
_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[str, MovingWindowRateLimiter]]
_limiters = weakref.WeakKeyDictionary()


def _limiter() -> MovingWindowRateLimiter:
    uri = settings.SUPERORCH_RATE_LIMIT_STORAGE
    loop = asyncio.get_running_loop()
    cached = _limiters.get(loop)
    if cached is None or cached[0] != uri:
        # redis-py's asyncio client (already installed for channels-redis), not coredis.
        options = {"implementation": "redispy"} if "redis" in uri else {}
        cached = (uri, MovingWindowRateLimiter(storage_from_string(uri, **options)))
        _limiters[loop] = cached
    return cached[1]


async def allow_message(conversation_key: str, *, rate: str) -> bool:
    """One more message of the conversation, if `rate` (e.g. "20/minute") allows it."""
    return await _limiter().hit(parse(rate), "msg", conversation_key)


async def allow_client_message(client: str, *, rate: str) -> bool:
    """One more message from this client (all its conversations), if `rate` allows it."""
    return await _limiter().hit(parse(rate), "client-msg", client)


async def allow_new_conversation(client: str, *, rate: str) -> bool:
    """One more new conversation started by this client, if `rate` allows it."""
    return await _limiter().hit(parse(rate), "client-new", client)


# The staff API's views are synchronous: the same storage, through limits' sync API.
_sync_limiter: tuple[str, SyncMovingWindowRateLimiter] | None = None


def _sync() -> SyncMovingWindowRateLimiter:
    global _sync_limiter
    uri = settings.SUPERORCH_RATE_LIMIT_STORAGE.removeprefix("async+")
    if _sync_limiter is None or _sync_limiter[0] != uri:
        _sync_limiter = (uri, SyncMovingWindowRateLimiter(storage_from_string(uri)))
    return _sync_limiter[1]


def allow_staff_request(user_key: str, *, rate: str) -> bool:
    """One more staff API request from this member of staff, if `rate` allows it."""
    return _sync().hit(parse(rate), "staff-api", user_key)


def allow_attachment(conversation_key: str, *, rate: str) -> bool:
    """One more attachment uploaded to the conversation, if `rate` allows it (the upload
    view is synchronous, like the staff API's)."""
    return _sync().hit(parse(rate), "attachment", conversation_key)
