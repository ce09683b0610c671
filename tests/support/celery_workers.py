"""Real Celery worker processes for the integration tests, on the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from django.db import connection

from superorch_site.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]


class Workers:
    """Celery worker processes for the test database; restartable by name."""

    def __init__(self, model_url: str, **extra: str) -> None:
        # Not eager: the worker takes its tasks from INTEGRATION_CELERY_BROKER_URL and
        # queues the next ones there too (superorch_site/settings/integration.py).
        self.env = integration_env(model_url, INTEGRATION_CELERY_EAGER="false", **extra)
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str) -> None:
        log = open(ROOT / "var" / f"celery-{name}.log", "w")  # noqa: SIM115
        self.procs[name] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "superorch_site",
                "worker",
                "--pool=solo",
                "--concurrency=1",
                "--without-gossip",
                "--without-mingle",
                f"--hostname={name}@%h",
                "--loglevel=INFO",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, names: list[str], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            replies = celery_app.control.ping(timeout=1) or []
            up = {host.split("@")[0] for reply in replies for host in reply}
            if set(names) <= up:
                return
            for name in names:  # not the others: a test may have killed one
                if self.procs[name].poll() is not None:
                    log = (ROOT / "var" / f"celery-{name}.log").read_text()[-3000:]
                    raise RuntimeError(f"worker {name} exited:\n{log}")
        raise TimeoutError(f"workers {names} did not come up")

    def wait_for_log(self, name: str, *needles: str, timeout: float = 15) -> str:
        """The worker's log once it holds every needle (it logs a task's success
        after the task's last frame went out, so a test must wait for the line)."""
        path = ROOT / "var" / f"celery-{name}.log"
        deadline = time.monotonic() + timeout
        while True:
            log = path.read_text()
            if all(needle in log for needle in needles) or time.monotonic() > deadline:
                return log
            time.sleep(0.1)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def integration_env(model_url: str, **extra: str) -> dict[str, str]:
    """The environment of a process the test starts on the test database (a worker, a
    web server), with the loopback model at `model_url`."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "superorch_site.settings.integration",
        "INTEGRATION_DATABASE_URL": _database_url(),
        "INTEGRATION_OPENAI_BASE_URL": model_url,
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def _database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
