"""Fixtures for the real-browser tests: a live server and a Chromium driven by Playwright.

The server is the project's own `manage.py runserver` (Daphne's, which serves static
files with DEBUG on) in a subprocess, on a fresh SQLite database in a temp dir, with
the local offline model streaming fast. Chromium is Debian's (/usr/bin/chromium):
`playwright install` cannot download browsers here.

Run with: .venv/bin/python -m pytest -m browser -p no:asyncio tests/browser
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM = os.environ.get("SUPERORCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# Environment the server must not inherit: it would leave the offline model or the
# embedded defaults (in-memory channel layer, eager Celery).
SCRUBBED_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "SUPERORCH_RATE_LIMIT_STORAGE",
    "DJANGO_ALLOWED_HOSTS",
)
# Only the pages the tests load are expected to answer 404 (the browser asks for a favicon).
IGNORED_CONSOLE_URLS = ("/favicon.ico",)

DEFAULT_TIMEOUT_MS = 10_000


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class LiveServer:
    def __init__(self, url: str, log_path: Path, env: dict[str, str]) -> None:
        self.url = url
        self.log_path = log_path
        self.env = env  # the server's environment (its DATABASE_URL among others)

    def django(self, code: str) -> str:
        """Run Python in `manage.py shell` on the server's database; returns what it printed."""
        done = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "shell", "-v", "0", "-c", code],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise AssertionError(f"manage.py shell failed ({done.returncode}):\n{done.stderr}")
        return done.stdout

    def log(self, since: int = 0) -> str:
        """The server's output, from byte offset `since`."""
        try:
            return self.log_path.read_bytes()[since:].decode(errors="replace")
        except OSError:
            return ""

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0


# Not named live_server: that name would make pytest-django set up its own test database.
@pytest.fixture(scope="session")
def chat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("superorch-browser")
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env.update(
        DJANGO_SETTINGS_MODULE="superorch_site.settings.local",  # what `make run` serves
        DATABASE_URL=f"sqlite:///{tmp / 'db.sqlite3'}",
        SUPERORCH_LOCAL_MODEL_DELAY="0.01",
        PYTHONUNBUFFERED="1",
        # Every browser test is the same client (127.0.0.1): its per-client limits would
        # refuse the suite's dozens of conversations (tests/chat/test_client_limits.py
        # tests the limits themselves).
        SUPERORCH_CLIENT_MAX_SOCKETS="0",
        SUPERORCH_CLIENT_NEW_CONVERSATION_RATE="10000/minute",
        SUPERORCH_CLIENT_MESSAGE_RATE="10000/minute",
    )
    manage = [sys.executable, str(ROOT / "manage.py")]
    for command in (["migrate", "--noinput", "-v", "0"], ["seed_team"]):
        done = subprocess.run(
            manage + command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            pytest.fail(
                f"manage.py {' '.join(command)} failed ({done.returncode}):\n"
                f"{done.stdout}\n{done.stderr}",
                pytrace=False,
            )

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env["SUPERORCH_APP_ORIGINS"] = f"{url},http://localhost:{port}"  # the socket's origin check
    backend_port = _free_port()  # the demo backend's, once a test starts it (demo_backend)
    env["SUPERORCH_ACTION_HOSTS"] = f"127.0.0.1:{backend_port}"
    log_path = tmp / "server.log"
    server = LiveServer(url, log_path, env)
    server.backend_port = backend_port
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            manage + ["runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while not _healthy(url + "/healthz"):
            if proc.poll() is not None or time.monotonic() > deadline:
                why = (
                    f"exited with {proc.returncode}"
                    if proc.poll() is not None
                    else "did not answer /healthz in 30 s"
                )
                print(f"--- server log ({log_path}) ---\n{server.log()}", file=sys.stderr)
                pytest.fail(f"The server {why}; its log is printed above.", pytrace=False)
            time.sleep(0.2)
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


@pytest.fixture(scope="session")
def demo_backend(chat_server: LiveServer) -> Iterator[str]:
    """The demo's backend (`manage.py demo_host`, the one `make run` serves), the seeded
    actions pointing at it: its address."""
    port = chat_server.backend_port
    address = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "demo_host", "--port", str(port),
         "--app", chat_server.url],
        cwd=ROOT, env=chat_server.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not _healthy(address + "/api/refunds"):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("The demo backend (manage.py demo_host) did not start.", pytrace=False)
            time.sleep(0.2)
        chat_server.django(
            "from demo.services import demo_actions_point_at\n"
            f"demo_actions_point_at(backend={address!r})"
        )
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=DEFAULT_TIMEOUT_MS)  # a whole reply streams within it

    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium", pytrace=False)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def screenshots_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def new_page(browser, chat_server) -> Iterator[Callable[..., object]]:
    """Factory: a page in a fresh browser context (fresh localStorage: a new conversation).

    Keyword arguments go to browser.new_context(). At the end of the test, fails on
    any uncaught page error, any console error (other than the favicon's 404 and the
    ones the test declared expected through page.expected_console) and any traceback
    the server logged meanwhile.
    """
    contexts = []
    problems: list[str] = []
    log_start = chat_server.log_size()

    def make(**context_kwargs):
        options = {"base_url": chat_server.url, "viewport": {"width": 1280, "height": 900}}
        options.update(context_kwargs)
        context = browser.new_context(**options)
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.expected_console = []  # substrings of console errors a test provokes on purpose

        def on_console(msg):
            if msg.type != "error":
                return
            url = (msg.location or {}).get("url", "")
            if url.endswith(IGNORED_CONSOLE_URLS):
                return
            if any(s in msg.text for s in page.expected_console):
                return
            problems.append(f"console error: {msg.text} ({url})")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        return page

    yield make

    for context in contexts:
        context.close()
    server_output = chat_server.log(since=log_start)
    if "Traceback" in server_output:
        problems.append("server logged a traceback:\n" + server_output)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def page(new_page):
    """A desktop page (1280x900) in a fresh context."""
    return new_page()
