"""At most once an interval per process (alert rules, run rollups after turns)."""

from __future__ import annotations

import threading
import time


class Throttle:
    """When this process last did the thing (`reset()` forgets it: tests)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last: float | None = None

    def due(self, interval: float) -> bool:
        """True (and the clock restarted) if `interval` seconds have passed (0: never)."""
        with self.lock:
            now = time.monotonic()
            if interval <= 0 or (self.last is not None and now - self.last < interval):
                return False
            self.last = now
            return True

    def reset(self) -> None:
        with self.lock:
            self.last = None
