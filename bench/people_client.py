"""The clients of the `people` benchmark: background streams and the people-in-the-loop
probe, each run as its own process (bench/scenarios/people.py starts them).

    python -m bench.people_client streams --url http://127.0.0.1:PORT --conns N
                                          [--ready-timeout S]
    python -m bench.people_client probe --url http://127.0.0.1:PORT --samples M
                                        --username U --password P [--pause S]

streams: N conversations on /ws/chat/, each sending a message as soon as its last turn
is done, so N agent replies stream at once. It prints `ready N` once N stream at the
same moment (or after --ready-timeout, with how many did), then runs until SIGTERM and
prints one JSON object: how many streamed at once while it ran (sampled every 50 ms
after `ready`), turns, errors, and the gaps between deltas.

probe: a member of staff logs in through the admin's login page (session cookie, CSRF)
and opens the inbox socket /ws/staff/ from the app's origin. Then, M times, one after
the other: a new conversation on /ws/chat/ sends `human.request`; timed until the
`inbox.changed` (status waiting) of that conversation arrives on the staff socket. The
member of staff then replies twice through the inbox's reply endpoint (POST
/staff/c/<uuid>/reply/, the form the page sends): the first reply takes the
conversation over, the second is a reply in a conversation they own; each timed from
the POST until the `message.done` with that staff message arrives on the user's
socket. Each redirect is followed afterwards, as a browser does (untimed), and the page
must say the reply was sent. Prints one JSON object with every sample in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import statistics
import sys
import time
import uuid
from typing import Any

import httpx2
import websockets

from bench.loadgen import pct

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
WAIT = 10.0  # seconds a probe waits for its frame before the sample counts as failed


# --- streams ------------------------------------------------------------------------------


class Streams:
    def __init__(self, url: str, conns: int, text: str) -> None:
        self.ws_url = url.replace("http://", "ws://") + "/ws/chat/"
        self.origin, self.conns, self.text = url, conns, text
        self.streaming: set[int] = set()  # clients between a turn's first delta and its end
        self.samples: list[int] = []
        self.turns = self.errors = self.failed = 0
        self.gaps: list[float] = []
        self.ready = asyncio.Event()

    async def client(self, index: int) -> None:
        async with websockets.connect(self.ws_url, origin=self.origin, max_queue=None) as ws:
            await ws.send(json.dumps({"type": "session.start", "protocol": 1, "site": "demo"}))
            while json.loads(await ws.recv())["type"] != "session.ready":
                pass
            while True:
                await ws.send(
                    json.dumps({"type": "message.send", "id": uuid.uuid4().hex, "text": self.text})
                )
                await self._turn(ws, index)

    async def _turn(self, ws, index: int) -> None:
        last = None
        try:
            while True:
                frame = json.loads(await ws.recv())
                kind = frame["type"]
                if kind == "message.delta":
                    now = time.perf_counter()
                    if last is not None:
                        self.gaps.append(now - last)
                    last = now
                    self.streaming.add(index)
                    if len(self.streaming) >= self.conns:
                        self.ready.set()
                elif kind == "error":
                    self.errors += 1
                elif kind == "turn.done":
                    self.turns += 1
                    self.failed += frame["status"] != "ok"
                    return
        finally:
            self.streaming.discard(index)

    async def sample(self) -> None:
        while True:
            self.samples.append(len(self.streaming))
            await asyncio.sleep(0.05)

    async def run(self, ready_timeout: float) -> dict[str, Any]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        tasks = [asyncio.create_task(self.client(i)) for i in range(self.conns)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ready.wait(), ready_timeout)
        print(f"ready {len(self.streaming)}", flush=True)
        self.gaps.clear()  # from now on: while the probe runs
        tasks.append(asyncio.create_task(self.sample()))
        await stop.wait()
        failed_clients = sum(1 for t in tasks if t.done() and t.exception() is not None)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        samples = self.samples or [0]
        return {
            "conversations": self.conns,
            "streaming_min": min(samples),
            "streaming_median": statistics.median(samples),
            "streaming_max": max(samples),
            "turns": self.turns,
            "failed": self.failed,
            "errors": self.errors,
            "clients_broken": failed_clients,
            "gap_p50_ms": round((pct(self.gaps, 0.5) or 0) * 1000, 1),
            "gap_p99_ms": round((pct(self.gaps, 0.99) or 0) * 1000, 1),
        }


# --- probe --------------------------------------------------------------------------------


class Socket:
    """A WebSocket whose frames are read as they come and stamped on arrival, so the
    time a frame arrived does not depend on when the probe looks at it."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.frames: asyncio.Queue[tuple[float, dict]] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for text in self.ws:
            self.frames.put_nowait((time.perf_counter(), json.loads(text)))

    async def wait_for(self, match, timeout: float = WAIT) -> tuple[float, dict]:
        async with asyncio.timeout(timeout):
            while True:
                stamp, frame = await self.frames.get()
                if match(frame):
                    return stamp, frame

    async def close(self) -> None:
        self.reader.cancel()
        await self.ws.close()


class Probe:
    def __init__(self, url: str, username: str, password: str, follow: bool = True) -> None:
        self.url, self.username, self.password, self.follow = url, username, password, follow
        self.http = httpx2.AsyncClient(base_url=url, timeout=WAIT, follow_redirects=False)
        self.out: dict[str, list[float]] = {
            "talk_ms": [],
            "user_told_ms": [],
            "reply_first_ms": [],
            "reply_next_ms": [],
            "post_first_ms": [],
            "post_next_ms": [],
            "page_first_ms": [],
            "page_next_ms": [],
        }
        self.failures: list[str] = []

    async def login(self) -> Socket:
        page = await self.http.get("/admin/login/", params={"next": "/staff/"})
        token = CSRF_INPUT.search(page.text)
        if page.status_code != 200 or token is None:
            raise RuntimeError(f"no login form: HTTP {page.status_code}")
        done = await self.http.post(
            "/admin/login/",
            data={
                "username": self.username,
                "password": self.password,
                "csrfmiddlewaretoken": token[1],
                "next": "/staff/",
            },
        )
        if done.status_code != 302 or "sessionid" not in self.http.cookies:
            raise RuntimeError(f"login refused: HTTP {done.status_code}")
        cookie = "; ".join(f"{k}={v}" for k, v in self.http.cookies.items())
        ws = await websockets.connect(
            self.url.replace("http://", "ws://") + "/ws/staff/",
            origin=self.url,
            additional_headers={"Cookie": cookie},
            max_queue=None,
        )
        return Socket(ws)

    async def reply(self, user: Socket, key: str, text: str, kind: str) -> tuple[float, float]:
        """POST the inbox's reply form; ms until the user's socket has the message, and
        ms until the POST was answered."""
        data = {"text": text, "csrfmiddlewaretoken": self.http.cookies["csrftoken"]}
        sent = time.perf_counter()
        post = asyncio.create_task(self.http.post(f"/staff/c/{key}/reply/", data=data))
        try:
            arrived, _ = await user.wait_for(
                lambda f: (
                    f["type"] == "message.done"
                    and f["message"]["role"] == "staff"
                    and f["message"]["text"] == text
                )
            )
        finally:
            answer = await post
        answered = time.perf_counter()
        if answer.status_code != 302:
            raise RuntimeError(f"reply refused: HTTP {answer.status_code}")
        if self.follow:
            page = await self.http.get(answer.headers["location"])  # as a browser does
            if "Your reply was sent." not in page.text:
                raise RuntimeError("the page did not say the reply was sent")
            self.out[f"page_{kind}_ms"].append((time.perf_counter() - answered) * 1000)
        return (arrived - sent) * 1000, (answered - sent) * 1000

    async def sample(self, staff: Socket, index: int) -> None:
        ws = await websockets.connect(
            self.url.replace("http://", "ws://") + "/ws/chat/", origin=self.url, max_queue=None
        )
        user = Socket(ws)
        try:
            await ws.send(json.dumps({"type": "session.start", "protocol": 1, "site": "demo"}))
            _, ready = await user.wait_for(lambda f: f["type"] == "session.ready")
            key = ready["conversation"]
            sent = time.perf_counter()
            await ws.send(json.dumps({"type": "human.request", "reason": "bench"}))
            arrived, _ = await staff.wait_for(
                lambda f: (
                    f["type"] == "inbox.changed"
                    and f["conversation"] == key
                    and f["status"] == "waiting"
                )
            )
            told, _ = await user.wait_for(
                lambda f: f["type"] == "conversation.status" and f["status"] == "waiting"
            )
            self.out["talk_ms"].append((arrived - sent) * 1000)
            self.out["user_told_ms"].append((told - sent) * 1000)
            for kind in ("first", "next"):
                frame_ms, post_ms = await self.reply(user, key, f"Staff reply {kind} {index}", kind)
                self.out[f"reply_{kind}_ms"].append(frame_ms)
                self.out[f"post_{kind}_ms"].append(post_ms)
        finally:
            await user.close()

    async def run(self, samples: int, pause: float) -> dict[str, Any]:
        staff = await self.login()
        try:
            for i in range(samples):
                try:
                    await self.sample(staff, i)
                except (TimeoutError, RuntimeError, OSError) as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}"[:200])
                await asyncio.sleep(pause)
        finally:
            await staff.close()
            await self.http.aclose()
        return self.out | {"failures": len(self.failures), "failure_examples": self.failures[:3]}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.people_client")
    parser.add_argument("mode", choices=["streams", "probe"])
    parser.add_argument("--url", required=True, help="http://127.0.0.1:PORT")
    parser.add_argument("--conns", type=int, default=50)
    parser.add_argument("--text", default="I was charged twice for my subscription")
    parser.add_argument("--ready-timeout", type=float, default=60)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--pause", type=float, default=0.1)
    parser.add_argument(
        "--no-follow", action="store_true", help="do not load the page a reply redirects to"
    )
    parser.add_argument("--username", default="")
    parser.add_argument("--password", default="")
    args = parser.parse_args()
    if args.mode == "streams":
        result = asyncio.run(Streams(args.url, args.conns, args.text).run(args.ready_timeout))
    else:
        probe = Probe(args.url, args.username, args.password, follow=not args.no_follow)
        result = asyncio.run(probe.run(args.samples, args.pause))
    print(json.dumps(result), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
