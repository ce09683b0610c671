"""Trained routers by corpus, retrained off the hot path when the registry changes.

Training takes seconds for a registry of a hundred examples and minutes for tens of
thousands, so a registry edit must not stall every chat turn while it happens. The
store keeps the routers it trained, keyed by a hash of their training texts; asked
for a corpus it has not trained yet, it starts training it on its one training
thread and, in background mode, answers with the newest router it has meanwhile
(a few seconds stale). Only a cold process, with no router at all, waits; with a
directory set (settings.SUPERORCH_ROUTER_CACHE_DIR), a router trained once is saved
there, and a process that starts loads it in a fraction of a second.
"""

from __future__ import annotations

import hmac
import logging
import os
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import sklearn

from . import router as router_module
from .router import ROUTER_FORMAT, Router, corpus_key

log = logging.getLogger(__name__)


class RouterStore:
    """`directory`: where trained routers are saved, so a process that starts (a web
    server, a Celery worker) loads the registry's router instead of training it again;
    None keeps them in memory only. Files are signed with `secret` (HMAC-SHA256) and
    one whose signature does not match is ignored: only this installation's own files
    are unpickled.

    The store keeps other trained models the same way (the input guardrail's): `build`
    trains one from (documents, fallback), `kind` is its class, `suffix` and `version`
    name its files."""

    def __init__(
        self,
        *,
        keep: int = 4,
        directory: Callable[[], Path | None] = lambda: None,
        secret: Callable[[], bytes] = lambda: b"",
        build: Callable[[Mapping[str, list[str]], list[str]], Any] | None = None,
        kind: Callable[[], type] = lambda: router_module.Router,
        suffix: str = "router",
        version: str = f"v{ROUTER_FORMAT}",
    ) -> None:
        self._build = build or (
            lambda documents, fallback: Router(documents, fallback_examples=fallback)
        )
        self._kind, self._suffix, self._version = kind, suffix, version
        self._keep = keep
        self._directory, self._secret = directory, secret
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

    def clear(self) -> None:
        """Forget the routers trained in this process (saved files stay)."""
        with self._lock:
            self._routers.clear()
            self._latest = None

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
            router = self._load(key)
            if router is None:
                router = self._build(documents, fallback)
                self._save(key, router)
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

    def _path(self, key: str) -> Path | None:
        directory = self._directory()
        if directory is None:
            return None
        name = f"{key}-{self._version}-sklearn{sklearn.__version__}.{self._suffix}"
        return Path(directory) / name

    def _load(self, key: str) -> Router | None:
        path = self._path(key)
        if path is None or not path.exists():
            return None
        try:
            data = path.read_bytes()
            mac, body = data[:32], data[32:]
            if not hmac.compare_digest(mac, hmac.new(self._secret(), body, "sha256").digest()):
                log.warning("Ignoring %s: its signature does not match (another SECRET_KEY?)", path)
                return None
            router = pickle.loads(body)  # noqa: S301 (signed by this installation, see above)
        except Exception as exc:  # a damaged file is trained again, and overwritten
            log.warning("Could not load the saved router %s: %s", path, exc)
            return None
        return router if isinstance(router, self._kind()) else None

    def _save(self, key: str, router: Router) -> None:
        path = self._path(key)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            body = pickle.dumps(router, protocol=pickle.HIGHEST_PROTOCOL)
            mac = hmac.new(self._secret(), body, "sha256").digest()
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(mac + body)
            tmp.replace(path)  # atomic: a process loading it sees the old file or the new
        except OSError as exc:  # the router still works; only the next start trains again
            log.warning("Could not save the router to %s: %s", path, exc)

    @staticmethod
    def _report(job: Future[Router]) -> None:
        exc = job.exception()
        if exc is not None:
            log.error("Training the router failed: %s", exc, exc_info=exc)
