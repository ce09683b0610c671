"""Trained routers by corpus, retrained off the hot path when the registry changes.

Training takes seconds for a registry of a hundred examples and minutes for tens of
thousands, so a registry edit must not stall every chat turn while it happens. The
store keeps the routers it trained, keyed by a hash of their training texts; asked
for a corpus it has not trained yet, it starts training it on its one training
thread and, in background mode, answers with the newest router it has meanwhile
(a few seconds stale). Only a cold process, with no router at all, waits.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor

from .router import Router, corpus_key

log = logging.getLogger(__name__)


class RouterStore:
    def __init__(self, *, keep: int = 4) -> None:
        self._keep = keep
        self._lock = threading.Lock()
        self._routers: OrderedDict[str, Router] = OrderedDict()
        self._latest: Router | None = None
        self._jobs: dict[str, Future[Router]] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="router-training")

    def get(
        self,
        documents: Mapping[str, list[str]],
        fallback: Iterable[str],
        *,
        background: bool,
        key: str | None = None,
    ) -> Router:
        """The router for this corpus; in background mode, the newest one while it trains.
        `key`: the corpus' hash, if the caller already has it (see corpus_key)."""
        router, job, stale = self._lookup(documents, fallback, key)
        if router is not None:
            return router
        if background and stale is not None:
            return stale
        return job.result()

    def warm(
        self, documents: Mapping[str, list[str]], fallback: Iterable[str], key: str | None = None
    ) -> None:
        """Start training this corpus if it is not trained yet, without waiting."""
        self._lookup(documents, fallback, key)

    def _lookup(self, documents, fallback, key=None):
        fallback = list(fallback)
        key = key or corpus_key(documents, fallback)
        with self._lock:
            router = self._routers.get(key)
            if router is not None:
                self._routers.move_to_end(key)
                return router, None, None
            job = self._jobs.get(key)
            if job is None:
                job = self._pool.submit(self._train, key, dict(documents), fallback)
                job.add_done_callback(self._report)
                self._jobs[key] = job
            return None, job, self._latest

    def _train(self, key: str, documents: Mapping[str, list[str]], fallback: list[str]) -> Router:
        try:
            router = Router(documents, fallback_examples=fallback)
        except BaseException:
            with self._lock:
                self._jobs.pop(key, None)
            raise
        with self._lock:
            self._routers[key] = router
            while len(self._routers) > self._keep:
                self._routers.popitem(last=False)
            self._latest = router
            self._jobs.pop(key, None)
        return router

    @staticmethod
    def _report(job: Future[Router]) -> None:
        exc = job.exception()
        if exc is not None:
            log.error("Training the router failed: %s", exc, exc_info=exc)
