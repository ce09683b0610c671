"""Reaching the database from async code, the two ways the orchestrator needs.

`db_call` runs a sync function in asgiref's one sync thread (thread-sensitive, as
Django's async ORM does). `db_call_parallel` runs it in a worker thread of its own,
with that thread's own connection, for CPU work that must not hold up the others
(routing, training a router, a whole eager workflow).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.utils import translation

T = TypeVar("T")


async def db_call(func: Callable[..., T], /, **kwargs: Any) -> T:
    return await sync_to_async(func)(**kwargs)


def with_own_connection(func: Callable[..., T], /, **kwargs: Any) -> T:
    """Run `func` with this thread's own connection, closed when it is too old or broken
    (as Django does around requests)."""
    close_old_connections()
    try:
        return func(**kwargs)
    finally:
        close_old_connections()


def _in_language(language: str | None, func: Callable[..., T], /, **kwargs: Any) -> T:
    with translation.override(language):
        return with_own_connection(func, **kwargs)


async def db_call_parallel(func: Callable[..., T], /, **kwargs: Any) -> T:
    # The active language goes along (asgiref keeps a thread's translation to that thread;
    # sync_to_async carries it, asyncio.to_thread does not): a turn's sentences stay in
    # the conversation's language (docs/widget.md, "Languages").
    return await asyncio.to_thread(_in_language, translation.get_language(), func, **kwargs)
