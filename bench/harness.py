"""Processes for the benchmarks: the app server, the simulated model, the load generator.

Everything runs on 127.0.0.1. The server and the load generator are separate processes,
so the generator's work does not slow the server's event loop (on this 2-core machine
they still share the CPU: figures are ratios measured side by side in one run).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager, suppress
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
APP_PACKAGES = ("chat", "orchestrator", "superorch_site")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "DJANGO_", "DATABASE_URL", "REDIS_URL", "CELERY_"))
    }
    env.update(
        # base, not local: DEBUG off as in production (no query log), with a bench-only key.
        DJANGO_SETTINGS_MODULE="superorch_site.settings.base",
        DJANGO_SECRET_KEY="bench-only-secret-key-superorch-0123456789abcdefghijklmnopqrstuvwxyz",
        DJANGO_ALLOWED_HOSTS="localhost,127.0.0.1,[::1]",
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="WARNING",
        SUPERORCH_RATE_LIMIT="100000/minute",
        # The load generator is one client with up to 1,000 conversations.
        SUPERORCH_CLIENT_MAX_SOCKETS="0",
        SUPERORCH_CLIENT_NEW_CONVERSATION_RATE="1000000/minute",
        SUPERORCH_CLIENT_MESSAGE_RATE="1000000/minute",
        SUPERORCH_LOCAL_MODEL_DELAY="0",
        # The simulated model is no judge of attacks, and the SDK alone makes no such call:
        # the model's own input check is off; the offline guardrail runs on every turn.
        SUPERORCH_GUARDRAIL_LLM="false",
    )
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        [PY, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


@contextmanager
def fresh_database(**extra: str):
    """A migrated, seeded SQLite database in a temporary directory; yields its env.

    It is a copy of a template (var/bench/seeded-HASH.sqlite3), migrated and seeded once
    for the app's code as it is (HASH covers its Python files), so a run of every
    scenario pays Django's migrate and seed_team once, not once per database."""
    with tempfile.TemporaryDirectory(prefix="superorch-bench-") as tmp:
        path = Path(tmp) / "db.sqlite3"
        shutil.copyfile(_seeded_template(), path)
        yield base_env(DATABASE_URL=f"sqlite:///{path}", **extra)


def _seeded_template() -> Path:
    digest = hashlib.sha256()
    for path in sorted(p for app in APP_PACKAGES for p in (ROOT / app).rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    template = ROOT / "var" / "bench" / f"seeded-{digest.hexdigest()[:16]}.sqlite3"
    if template.exists():
        return template
    template.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="superorch-bench-", dir=template.parent) as tmp:
        built = Path(tmp) / "db.sqlite3"
        env = base_env(DATABASE_URL=f"sqlite:///{built}")
        manage(env, "migrate", "--noinput", "-v", "0")
        manage(env, "seed_team")
        for old in template.parent.glob("seeded-*.sqlite3"):
            old.unlink()
        os.replace(built, template)
    return template


def sql_rows(env: dict[str, str], statement: str, *params: object) -> list[tuple]:
    """Every row of one statement on a bench database (SQLite, or PostgreSQL from
    fresh_postgres; placeholders `?` either way)."""
    if env["DATABASE_URL"].startswith("postgres"):
        import psycopg

        with psycopg.connect(env["DATABASE_URL"]) as conn:
            return conn.execute(statement.replace("?", "%s"), params).fetchall()
    path = env["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path, timeout=30) as conn:
        return conn.execute(statement, params).fetchall()


def sql(env: dict[str, str], statement: str, *params: object) -> tuple | None:
    """One statement on a bench database (SQLite or PostgreSQL), beside the server,
    without starting Django; returns its first row."""
    rows = sql_rows(env, statement, *params)
    return rows[0] if rows else None


@contextmanager
def server(
    env: dict[str, str],
    kind: str = "daphne",
    app: str = "bench.asgi:application",
    port: int | None = None,
    workers: int = 1,
    spread: bool = True,
):
    """The ASGI server in its own process; yields its base URL once /healthz answers.
    `port`: a port chosen beforehand (free_port()), when the env must name the origin.
    `workers`: uvicorn worker processes on the one port (server_rss counts them all), by
    superorch_site.web (a socket each, as make serve runs them) or, `spread` False,
    uvicorn's own --workers (one socket shared)."""
    port = port or free_port()
    if workers != 1 and kind != "uvicorn":
        raise ValueError("several worker processes: uvicorn only")
    if kind == "daphne":
        cmd = [PY, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app]
    elif kind == "uvicorn" and workers > 1 and spread:  # make serve's: a socket each
        cmd = [PY, "-m", "superorch_site.web", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers), "--app", app]  # fmt: skip
    elif kind == "uvicorn":
        cmd = [
            PY,
            "-m",
            "uvicorn",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            *(["--workers", str(workers)] if workers != 1 else []),  # one shared socket
            app,
        ]
    else:
        raise ValueError(kind)
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (the server writes to it until the end)
        prefix=f"bench-{kind}-", suffix=".log", delete=False
    )
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    profiler = None
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{kind} did not start:\n{Path(log.name).read_text()[-3000:]}")
            time.sleep(0.2)
        profiler = _profile(proc.pid)
        SERVERS[url] = proc.pid
        if workers > 1:  # every worker answers /healthz before the load starts
            _wait_for_children(proc.pid, workers, deadline)
        yield url
    finally:
        SERVERS.pop(url, None)
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            profiler.wait(60)
        _stop(proc, Path(log.name), "server", failed=sys.exc_info()[0] is not None)


SERVERS: dict[str, int] = {}  # base URL -> the server's process id, while it runs


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with suppress(OSError):
            kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


def _wait_for_children(pid: int, n: int, deadline: float) -> None:
    while len(_children(pid)) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn started {len(_children(pid))} of {n} workers")
        time.sleep(0.2)
    time.sleep(3)  # each worker imports the app and loads the router before it answers


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants (Linux /proc)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
        todo += _children(current)
    return total


def server_rss(url: str) -> int:
    """The resident memory of the server at `url` (every worker process included)."""
    return rss_bytes(SERVERS[url])


@contextmanager
def fresh_postgres(**extra: str):
    """A migrated, seeded PostgreSQL database (a copy of a template database made once
    per version of the app's code, as fresh_database does for SQLite); yields its env.
    Needs the PostgreSQL at BENCH_POSTGRES_URL (default: the local one, user postgres)."""
    import psycopg

    admin = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    base = admin.rsplit("/", 1)[0]
    template = _postgres_template(admin, base)
    name = f"superorch_bench_{os.getpid()}_{time.time_ns() % 1_000_000}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield base_env(DATABASE_URL=f"{base}/{name}", **extra)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _postgres_template(admin: str, base: str) -> str:
    import psycopg

    digest = hashlib.sha256()
    for path in sorted(p for app in APP_PACKAGES for p in (ROOT / app).rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    template = f"superorch_bench_tpl_{digest.hexdigest()[:16]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [template])
        if found.fetchone():
            return template
        old = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'superorch_bench_tpl_%%'"
        ).fetchall()
        for (stale,) in old:
            conn.execute(f'DROP DATABASE IF EXISTS "{stale}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{template}"')
    env = base_env(DATABASE_URL=f"{base}/{template}")
    try:
        manage(env, "migrate", "--noinput", "-v", "0")
        manage(env, "seed_team")
    except Exception:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
        raise
    return template


@contextmanager
def celery_worker(env: dict[str, str], *, pool: str = "threads", concurrency: int = 10):
    """A Celery worker of the app in its own process, for as long as the block runs."""
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (the worker writes to it until the end)
        prefix="bench-celery-", suffix=".log", delete=False
    )
    cmd = [PY, "-m", "celery", "-A", "superorch_site", "worker", f"--pool={pool}",
           f"--concurrency={concurrency}", "--without-gossip", "--without-mingle",
           "--loglevel=INFO"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "ready." not in Path(log.name).read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"celery did not start:\n{Path(log.name).read_text()[-3000:]}")
            time.sleep(0.2)
        yield proc
    finally:
        _stop(proc, Path(log.name), "celery", failed=sys.exc_info()[0] is not None)


def _stop(proc: subprocess.Popen, log: Path, what: str, *, failed: bool) -> None:
    """Stop a process of the harness; keep its log only when the block failed."""
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
    if failed:
        print(f"{what} log kept: {log}", file=sys.stderr)
    else:
        log.unlink(missing_ok=True)


def _profile(pid: int) -> subprocess.Popen | None:
    """With BENCH_PROFILE=FILE, py-spy samples the server until it stops (collapsed
    stacks, one line a stack, for `bench/profile_top.py` or a flame graph tool)."""
    out = os.environ.get("BENCH_PROFILE")
    if not out:
        return None
    return subprocess.Popen(
        [
            shutil.which("py-spy", path=str(Path(PY).parent)) or "py-spy",
            "record",
            "--pid",
            str(pid),
            "--rate",
            "250",
            "--format",
            "raw",
            "-o",
            out,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextmanager
def simulated_model(
    first_token: float = 0.0, tokens_per_second: float = 0.0, words: int = 40, script: str = "reply"
):
    """The loopback OpenAI-compatible server (tests/support) in its own process."""
    port = free_port()
    cmd = [
        PY,
        "-m",
        "bench.model_server",
        "--port",
        str(port),
        "--first-token",
        str(first_token),
        "--tokens-per-second",
        str(tokens_per_second),
        "--words",
        str(words),
        "--script",
        script,
    ]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        line = proc.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError(f"model server did not start: {line}{proc.stdout.read()}")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def held(url: str, conns: int, *, stream: bool = False, timeout: float = 300):
    """`conns` conversations held open by the load generator (bench.loadgen --mode
    hold) for as long as the block runs; yields once every one is open (streaming)."""
    ws = url.replace("http://", "ws://")
    cmd = [PY, "-m", "bench.loadgen", "--url", ws, "--mode", "hold", "--conns", str(conns),
           "--timeout", str(timeout), *(["--stream"] if stream else [])]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        if not line.startswith('{"ready"'):
            raise RuntimeError(f"load generator failed:\n{line}{proc.stderr.read()[-3000:]}")
        yield json.loads(line)
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def loadgen(url: str, *args: str, timeout: float = 600) -> dict:
    """Run the load generator in its own process; returns its JSON report."""
    ws = url.replace("http://", "ws://")
    done = subprocess.run(
        [PY, "-m", "bench.loadgen", "--url", ws, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode:
        raise RuntimeError(f"load generator failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
