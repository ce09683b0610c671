"""make serve's web tier (superorch_site/web.py): WORKERS uvicorn processes on one port,
each with a socket of its own, so new connections spread over all of them; a worker that
dies is replaced; SIGTERM stops them all."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_of(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        return int(response.read())


def answering(port: int, deadline: float) -> None:
    while True:
        try:
            pid_of(port)
            return
        except OSError:
            assert time.monotonic() < deadline, "the web workers never answered"
            time.sleep(0.1)


@pytest.fixture
def web():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "superorch_site.web", "--host", "127.0.0.1", "--port",
         str(port), "--workers", "2", "--app", "tests.support.pid_app:app"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    answering(port, time.monotonic() + 30)
    yield proc, port
    if proc.poll() is None:
        proc.kill()  # the supervisor, at once: its workers must not outlive it
        proc.wait(10)


def test_workers_do_not_outlive_a_killed_supervisor(web):
    proc, port = web
    workers = {pid_of(port) for _ in range(100)}
    proc.kill()
    proc.wait(10)
    deadline = time.monotonic() + 20
    while any(Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid) for pid in workers):
        assert time.monotonic() < deadline, f"workers {workers} outlived their supervisor"
        time.sleep(0.1)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0]
    except (OSError, IndexError):
        return "zombie"


def test_connections_spread_over_every_worker_and_a_dead_one_is_replaced(web):
    proc, port = web
    seen = Counter(pid_of(port) for _ in range(200))
    assert len(seen) == 2, seen  # both workers answer
    assert min(seen.values()) >= 40, seen  # spread by the kernel, not one taking all

    victim = next(iter(seen))
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        now = set()
        for _ in range(60):
            # One hashed to the dead worker's socket is refused until it is replaced.
            with contextlib.suppress(OSError):
                now.add(pid_of(port))
        if len(now) == 2 and victim not in now:
            break  # a new worker in its place
        assert time.monotonic() < deadline, f"no worker replaced {victim}: {now}"
        time.sleep(0.2)

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    with pytest.raises(OSError):
        pid_of(port)


def test_a_port_taken_by_another_program_stops_it_in_plain_words():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "superorch_site.web", "--host", "127.0.0.1", "--port",
             str(port), "--workers", "2", "--app", "tests.support.pid_app:app"],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 3
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
