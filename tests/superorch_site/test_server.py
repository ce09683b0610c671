"""The server as the project starts it (`manage.py runserver`: daphne with superorch_site.server's
settings), in a subprocess on the test database: frames up to the server's cap are answered
`too_large`, a socket without a session and a slow HTTP client are dropped, static files
carry nosniff. Runs in `make test` (a few seconds)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from chat.services import site_ensure_default
from orchestrator.services import team_seed
from tests.browser.conftest import SCRUBBED_ENV, _free_port, _healthy

ROOT = Path(__file__).resolve().parents[2]
IDLE = 2  # seconds: the server's HTTP idle timeout and session-start timeout here


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker):
    from django.db import connection

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env.update(
        DJANGO_SETTINGS_MODULE="superorch_site.settings.local",  # DEBUG: static files too
        DATABASE_URL=f"sqlite:///{connection.settings_dict['NAME']}",
        SUPERORCH_APP_ORIGINS=url,
        SUPERORCH_SESSION_START_TIMEOUT=str(IDLE),
        SUPERORCH_SERVER_IDLE_TIMEOUT=str(IDLE),
        SUPERORCH_LOCAL_MODEL_DELAY="0",
        SUPERORCH_ROUTER_CACHE_DIR="",
    )
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not _healthy(url + "/healthz"):
            assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            output = proc.communicate(timeout=10)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            proc.kill()
            output = proc.communicate()[0].decode(errors="replace")
    assert "Traceback" not in output, output


@pytest.fixture
def socket_url(server, transactional_db):
    team_seed()  # committed: the server's process reads them
    site_ensure_default()
    return server.replace("http://", "ws://") + "/ws/chat/", server


def started(socket_url):
    url, origin = socket_url
    ws = connect(url, origin=origin, open_timeout=10)
    ws.send(json.dumps({"type": "session.start", "protocol": 1}))
    assert json.loads(ws.recv(timeout=10))["type"] == "session.ready"
    return ws


@pytest.mark.parametrize("size", [1_100_000, 2_000_000])
def test_frames_up_to_the_servers_cap_are_answered_too_large(socket_url, size):
    with started(socket_url) as ws:
        ws.send(json.dumps({"type": "ping", "pad": "x" * size}))
        error = json.loads(ws.recv(timeout=10))
        assert (error["type"], error["code"]) == ("error", "too_large")
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "pong"}


def test_a_socket_without_a_session_is_closed_by_the_server(socket_url):
    url, origin = socket_url
    with connect(url, origin=origin, open_timeout=10) as ws:
        error = json.loads(ws.recv(timeout=IDLE + 5))
        assert (error["type"], error["code"]) == ("error", "bad_frame")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.close_code == 4400


def test_a_slow_http_client_is_dropped(server):
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=IDLE + 5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never ends its headers
        started_at = time.monotonic()
        assert sock.recv(1024) == b""  # closed by the server
        assert time.monotonic() - started_at < IDLE + 3


def test_static_files_carry_nosniff(server):
    with urllib.request.urlopen(server + "/static/superorch/chat/main.js", timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
