"""`make serve`'s web tier: WORKERS uvicorn processes on one port, each with a listening
socket of its own (SO_REUSEPORT), so that the kernel spreads new connections evenly over
them.

uvicorn's own `--workers` gives every process the one socket it bound, and whichever
process wakes first accepts: under load one process took about 80 % of the connections
(the `servers` benchmark, 2026-12-04: 9.8 s of CPU against 2.5 s for the other, so two
processes answered no more turns than one). With a socket each, Linux hashes every new
connection to one of them.

    python -m superorch_site.web --host 127.0.0.1 --port 8000 --workers 2

The parent imports neither Django nor the app: it forks the workers, restarts one that
dies (after a second, so a worker that cannot start does not spin), and passes SIGTERM
and SIGINT on to them; each worker is a plain `uvicorn.Server` running
`superorch_site.asgi:application` with the limits of docs/operations.md.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import sys
import threading
import time

APP = "superorch_site.asgi:application"
RESTART_DELAY = 1.0  # seconds before a dead worker is started again
GRACE_SECONDS = 10  # a stopping worker's graceful shutdown; killed KILL_AFTER later
KILL_AFTER = GRACE_SECONDS + 5
STARTUP_FAILURE = 3  # a worker's exit code when it could not start (bind, import)
PR_SET_PDEATHSIG = 1  # prctl(2)


def listening_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A socket of one worker's own on (host, port), sharing the port with the others."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    return sock


def serve_one(host: str, port: int, app: str = APP) -> None:
    """One worker: its own socket, then uvicorn until it is told to stop."""
    import uvicorn

    try:
        sock = listening_socket(host, port)
    except OSError as exc:
        print(f"web worker {os.getpid()}: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        os._exit(STARTUP_FAILURE)
    config = uvicorn.Config(
        app,
        ws_max_size=4 * 1024 * 1024,  # SUPERORCH_SERVER_MAX_MESSAGE_BYTES: too_large, not 1009
        timeout_keep_alive=30,
        ws_ping_interval=20,
        ws_ping_timeout=30,
        access_log=False,  # proxy headers: uvicorn's defaults (FORWARDED_ALLOW_IPS)
        # Told to stop, a worker waits this long for its connections and tasks, then
        # cancels them (without it, a turn's task kept a stopped worker alive).
        timeout_graceful_shutdown=GRACE_SECONDS,
    )
    uvicorn.Server(config).run(sockets=[sock])


def _die_with_parent() -> None:
    """Linux: this worker gets SIGTERM when the supervisor dies, however it dies (a
    SIGKILL leaves no one to pass the signal on), so no worker outlives it."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the supervisor's own stop still works
        pass
    if os.getppid() == 1:  # the supervisor died before the line above
        os._exit(0)


def _start(host: str, port: int, app: str) -> int:
    pid = os.fork()
    if pid == 0:  # the worker
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _die_with_parent()
        try:
            serve_one(host, port, app)
        finally:
            os._exit(0)
    return pid


def supervise(host: str, port: int, workers: int, app: str = APP) -> int:
    stopping = False

    def stop(signum, frame) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        for pid in list(alive):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        killer = threading.Timer(KILL_AFTER, kill_the_rest)
        killer.daemon = True
        killer.start()

    def kill_the_rest() -> None:
        for pid in list(alive):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    alive: set[int] = set()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(workers):
        alive.add(_start(host, port, app))
    print(f"web: {workers} uvicorn worker(s) on {host}:{port}, a socket each", flush=True)
    while alive:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:  # pragma: no cover (PEP 475 retries)
            continue
        alive.discard(pid)
        if stopping:
            continue
        if os.waitstatus_to_exitcode(status) == STARTUP_FAILURE:
            print("web: a worker could not start; stopping", file=sys.stderr, flush=True)
            stop(signal.SIGTERM, None)
            return STARTUP_FAILURE
        print(f"web: worker {pid} died; starting another", file=sys.stderr, flush=True)
        time.sleep(RESTART_DELAY)
        alive.add(_start(host, port, app))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m superorch_site.web", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("SERVE_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SERVE_PORT", "8000")))
    parser.add_argument(
        "--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "0") or 0)
    )
    parser.add_argument("--app", default=APP, help="the ASGI application (module:name)")
    args = parser.parse_args(argv)
    workers = args.workers if args.workers > 0 else (os.cpu_count() or 1)
    return supervise(args.host, args.port, workers, args.app)


if __name__ == "__main__":
    sys.exit(main())
