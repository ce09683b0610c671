"""Profiling the bench server when py-spy is not installed (bench.asgi starts it).

    BENCH_SAMPLE=FILE     a thread looks at every thread's stack every BENCH_SAMPLE_MS
                          milliseconds (default 5) and writes collapsed stacks to FILE,
                          one `thread:NAME;frame;frame... count` line a stack (py-spy's raw
                          format plus the thread's name first; `bench/profile_top.py` reads
                          it). Wall-clock samples, biased towards calls that release the GIL.
    BENCH_CPROFILE=FILE   cProfile on the event loop's thread (deterministic, slower) for
                          the first BENCH_CPROFILE_SECONDS (default 10) of the loaded
                          window; pstats written to FILE.
    BENCH_WINDOW=FILE     neither: only the loaded window's figures, to FILE.window.json.
    BENCH_SAMPLE_MIN_STREAMS=N
                          only while N replies or more stream in the process (the loaded
                          window); its wall time and the process's CPU time (every
                          thread) go to FILE.window.json.

Bench-only: never imported by the app.
"""

from __future__ import annotations

import asyncio  # noqa: F401 (the loop's type)
import atexit
import cProfile
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

FLUSH_EVERY = 5.0  # seconds
POLL = 0.005  # seconds


def _frame_name(code, lineno: int) -> str:
    path = code.co_filename
    for marker in ("site-packages/", "/lib/python3.11/", "/wt-perf/", "/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{code.co_name} ({path}:{lineno})"


def _open_streams() -> int:
    broadcast = sys.modules.get("chat.broadcast")
    return broadcast.DeltaStream.open_streams if broadcast is not None else 0


class Window:
    """The loaded window: wall time, the process's CPU time (every thread)."""

    def __init__(self) -> None:
        self.wall = self.user = self.system = 0.0
        self._start: tuple[float, float, float] | None = None

    def enter(self) -> None:
        t = os.times()
        self._start = (time.monotonic(), t.user, t.system)

    def leave(self) -> None:
        if self._start is None:
            return
        t = os.times()
        wall, user, system = self._start
        self.wall += time.monotonic() - wall
        self.user += t.user - user
        self.system += t.system - system
        self._start = None

    def current(self) -> float:
        """Seconds into the window open now (0 outside one)."""
        return time.monotonic() - self._start[0] if self._start else 0.0

    def as_dict(self) -> dict:
        """The windows so far, the one open now included."""
        wall, user, system = self.wall, self.user, self.system
        if self._start is not None:
            t = os.times()
            wall += time.monotonic() - self._start[0]
            user += t.user - self._start[1]
            system += t.system - self._start[2]
        return {
            "wall_s": round(wall, 2),
            "cpu_user_s": round(user, 2),
            "cpu_system_s": round(system, 2),
            "cpu_share": round((user + system) / wall, 3) if wall else None,
        }


class Sampler:
    def __init__(
        self, out: Path | None, profile: Path | None, interval: float, window: Path | None = None
    ) -> None:
        self.out, self.profile_out, self.interval = out, profile, interval
        self.window_out = window
        self.stacks: Counter[str] = Counter()
        self.me: int | None = None  # the sampler's own thread
        self.min_streams = int(os.environ.get("BENCH_SAMPLE_MIN_STREAMS", "0"))
        self.window = Window()
        self.loaded = False
        self.profiler = cProfile.Profile() if profile else None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.profile_seconds = float(os.environ.get("BENCH_CPROFILE_SECONDS", "10"))
        self._stop = threading.Event()

    def _is_loaded(self) -> bool:
        return not self.min_streams or _open_streams() >= self.min_streams

    def _switch(self, loaded: bool) -> None:
        self.loaded = loaded
        (self.window.enter if loaded else self.window.leave)()
        if loaded and self.profiler is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(self.profiler.enable)

    def _profile_done(self) -> None:
        """On the loop's thread, once: the profile of the first loaded seconds is written."""
        self.profiler.disable()
        self.profiler.dump_stats(str(self.profile_out))
        self.profiler = None

    def _sample(self) -> None:
        names = {t.ident: t.name for t in threading.enumerate()}
        for ident, frame in sys._current_frames().items():
            if ident == self.me:
                continue
            frames = []
            while frame is not None:
                frames.append(_frame_name(frame.f_code, frame.f_lineno))
                frame = frame.f_back
            frames.append(f"thread:{names.get(ident, ident)}")
            self.stacks[";".join(reversed(frames))] += 1

    def run(self) -> None:
        self.me = threading.get_ident()
        last_flush = time.monotonic()
        while not self._stop.wait(self.interval if self.out else POLL):
            loaded = self._is_loaded()
            if loaded != self.loaded:
                self._switch(loaded)
            if loaded and self.out:
                self._sample()
            if self.profiler is not None and self.window.current() > self.profile_seconds:
                self.loop.call_soon_threadsafe(self._profile_done)
                self.profile_seconds = float("inf")
            if time.monotonic() - last_flush > FLUSH_EVERY:
                self.flush()
                last_flush = time.monotonic()

    def flush(self) -> None:
        target = self.out or self.profile_out or self.window_out
        if self.out:
            lines = [f"{stack} {n}" for stack, n in self.stacks.items()]
            tmp = self.out.with_suffix(".tmp")
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
            os.replace(tmp, self.out)
        window = Path(f"{target}.window.json")
        window.write_text(json.dumps(self.window.as_dict()), encoding="utf-8")

    def stop(self) -> None:
        self._stop.set()
        if self.loaded:
            self.window.leave()
        self.flush()


def start_from_env() -> Sampler | None:
    out, profile = os.environ.get("BENCH_SAMPLE"), os.environ.get("BENCH_CPROFILE")
    window = os.environ.get("BENCH_WINDOW")
    if not (out or profile or window):
        return None
    interval = float(os.environ.get("BENCH_SAMPLE_MS", "5")) / 1000
    sampler = Sampler(
        Path(out) if out else None,
        Path(profile) if profile else None,
        interval,
        Path(window) if window else None,
    )
    if profile:
        # daphne has installed twisted's asyncio reactor before it imports the
        # application: its loop is the one the turns and sockets run on.
        from twisted.internet import reactor

        sampler.loop = reactor._asyncioEventloop
    threading.Thread(target=sampler.run, name="bench-sampler", daemon=True).start()
    atexit.register(sampler.stop)
    return sampler
