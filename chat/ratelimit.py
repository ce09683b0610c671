"""Per-conversation message rate limits (the `limits` library, async API).

Memory storage in one process; Redis (SUPERORCH_RATE_LIMIT_STORAGE) across processes.
"""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings
from limits import parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string


@lru_cache(maxsize=4)
def _limiter(storage_uri: str) -> MovingWindowRateLimiter:
    return MovingWindowRateLimiter(storage_from_string(storage_uri))


async def allow_message(conversation_key: str) -> bool:
    limiter = _limiter(settings.SUPERORCH_RATE_LIMIT_STORAGE)
    return await limiter.hit(parse(settings.SUPERORCH_RATE_LIMIT), "msg", conversation_key)
