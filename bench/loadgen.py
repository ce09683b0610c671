"""The load generator: speaks the chat protocol (docs/protocol.md) over real WebSockets
(and, for the peer scenario, ChatKit's protocol over HTTP).

    python -m bench.loadgen --url ws://127.0.0.1:PORT --mode echo|turns|chatkit
                            [--conns N] [--count M] [--text T] [--timeout S]
                            [--fresh] [--samples]

echo: N sockets on /ws/bench-echo/, each sending M frames one after the other.
turns: N conversations on /ws/chat/, each sending M messages one after the other and
reading every frame of each turn.
chatkit: the peer (bench/peer_chatkit.py), over HTTP: N clients, each sending M
`threads.create` requests to /chatkit one after the other (kept-alive connections) and
reading every event of each SSE stream. hold: N conversations opened (--stream: each
with a reply streaming) and kept until stdin closes, `{"ready": N}` printed once they
all are (for the memory scenario). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
import uuid

import websockets


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]


async def echo_client(url: str, origin: str, count: int, rtts: list[float]) -> None:
    async with websockets.connect(url + "/ws/bench-echo/", origin=origin, max_queue=None) as ws:
        frame = json.dumps({"type": "ping"})
        for _ in range(count):
            t = time.perf_counter()
            await ws.send(frame)
            await ws.recv()
            rtts.append(time.perf_counter() - t)


async def chat_client(url, origin, count, text, timeout, out, fresh=False) -> None:
    if fresh:  # every turn is the first message of a new conversation
        for _ in range(count):
            await chat_client(url, origin, 1, text, timeout, out)
        return
    async with websockets.connect(url + "/ws/chat/", origin=origin, max_queue=None) as ws:
        await ws.send(json.dumps({"type": "session.start", "protocol": 1, "site": "demo"}))
        while json.loads(await ws.recv())["type"] != "session.ready":
            pass
        for _ in range(count):
            cid = uuid.uuid4().hex
            sent = time.perf_counter()
            await ws.send(json.dumps({"type": "message.send", "id": cid, "text": text}))
            first = last = None
            gaps: list[float] = []
            done_text = None
            ok = False
            try:
                async with asyncio.timeout(timeout):
                    while True:
                        frame = json.loads(await ws.recv())
                        kind = frame["type"]
                        now = time.perf_counter()
                        if kind == "message.delta":
                            if first is None:
                                first = now
                            elif last is not None:
                                gaps.append(now - last)
                            last = now
                        elif kind == "message.done":
                            done_text = frame["message"]["text"]
                        elif kind == "message.ack":
                            out["acked"] += 1
                        elif kind == "error":
                            out["errors"] += 1
                        elif kind == "turn.done":
                            ok = frame["status"] == "ok"
                            break
            except TimeoutError:
                out["timeouts"] += 1
            out["turns"] += 1
            if not ok:
                out["failed"] += 1
            if done_text is None:
                out["lost"] += 1
            out["latency"].append(time.perf_counter() - sent)
            if first is not None:
                out["ttft"].append(first - sent)
            out["gaps"].extend(gaps)


async def chatkit_client(client, url, count, text, timeout, out) -> None:
    """Each turn is a new ChatKit thread: `threads.create` with the user message."""
    body = json.dumps(
        {
            "type": "threads.create",
            "params": {
                "input": {
                    "content": [{"type": "input_text", "text": text}],
                    "attachments": [],
                    "inference_options": {},
                }
            },
        }
    )
    headers = {"content-type": "application/json"}
    for _ in range(count):
        sent = time.perf_counter()
        first = last = None
        gaps: list[float] = []
        done_text = None
        ok = False
        try:
            async with (
                asyncio.timeout(timeout),
                client.stream("POST", url + "/chatkit", content=body, headers=headers) as r,
            ):
                ok = r.status_code == 200
                async for line in r.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    event = json.loads(line[6:])
                    kind = event["type"]
                    now = time.perf_counter()
                    if kind == "thread.item.updated":
                        if event["update"]["type"] == "assistant_message.content_part.text_delta":
                            if first is None:
                                first = now
                            elif last is not None:
                                gaps.append(now - last)
                            last = now
                    elif kind == "thread.item.done":
                        item = event["item"]
                        if item["type"] == "assistant_message":
                            done_text = "".join(c["text"] for c in item["content"])
                    elif kind == "error":
                        out["errors"] += 1
                        ok = False
        except TimeoutError:
            out["timeouts"] += 1
            ok = False
        except Exception:  # a broken connection or stream: a failed turn
            out["errors"] += 1
            ok = False
        out["turns"] += 1
        if done_text is None:
            out["lost"] += 1
            ok = False
        if not ok:
            out["failed"] += 1
        out["latency"].append(time.perf_counter() - sent)
        if first is not None:
            out["ttft"].append(first - sent)
        out["gaps"].extend(gaps)


async def hold_client(url, origin, stream, text, opened, ready, release) -> None:
    """One conversation held open: session started (and, `stream`, a reply streaming)."""
    async with websockets.connect(url + "/ws/chat/", origin=origin, max_queue=None) as ws:
        await ws.send(json.dumps({"type": "session.start", "protocol": 1, "site": "demo"}))
        while json.loads(await ws.recv())["type"] != "session.ready":
            pass
        if stream:
            cid = uuid.uuid4().hex
            await ws.send(json.dumps({"type": "message.send", "id": cid, "text": text}))
            while json.loads(await ws.recv())["type"] != "message.delta":
                pass
        opened.append(1)
        if len(opened) == ready["want"]:
            ready["event"].set()
        reader = asyncio.create_task(_drain(ws))
        await release.wait()
        reader.cancel()


async def _drain(ws) -> None:
    with contextlib.suppress(Exception):
        async for _ in ws:
            pass


async def hold(args) -> dict:
    """Open N conversations, print `ready` once all are (idle, or streaming with
    --stream), keep them until stdin closes; then print the report."""
    origin = args.url.replace("ws://", "http://")
    opened: list[int] = []
    ready = {"want": args.conns, "event": asyncio.Event()}
    release = asyncio.Event()
    started = time.perf_counter()
    clients = [
        asyncio.create_task(
            hold_client(args.url, origin, args.stream, args.text, opened, ready, release)
        )
        for _ in range(args.conns)
    ]
    async with asyncio.timeout(args.timeout):
        await ready["event"].wait()
    print(json.dumps({"ready": len(opened), "seconds": time.perf_counter() - started}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    release.set()
    await asyncio.gather(*clients, return_exceptions=True)
    return {"mode": "hold", "conversations": len(opened)}


async def main_async(args) -> dict:
    origin = args.url.replace("ws://", "http://")
    started = time.perf_counter()
    if args.mode == "hold":
        return await hold(args)
    if args.mode == "echo":
        rtts: list[float] = []
        await asyncio.gather(
            *(echo_client(args.url, origin, args.count, rtts) for _ in range(args.conns))
        )
        elapsed = time.perf_counter() - started
        return {
            "mode": "echo",
            "round_trips": len(rtts),
            "seconds": elapsed,
            "per_second": len(rtts) / elapsed,
            "rtt_p50_ms": statistics.median(rtts) * 1000,
        }
    out = {
        "turns": 0,
        "failed": 0,
        "errors": 0,
        "lost": 0,
        "acked": 0,
        "timeouts": 0,
        "latency": [],
        "ttft": [],
        "gaps": [],
    }
    if args.mode == "chatkit":
        import httpx2

        limits = httpx2.Limits(max_connections=args.conns, max_keepalive_connections=args.conns)
        async with httpx2.AsyncClient(limits=limits, timeout=args.timeout) as client:
            await asyncio.gather(
                *(
                    chatkit_client(client, origin, args.count, args.text, args.timeout, out)
                    for _ in range(args.conns)
                )
            )
    else:
        await asyncio.gather(
            *(
                chat_client(args.url, origin, args.count, args.text, args.timeout, out, args.fresh)
                for _ in range(args.conns)
            )
        )
    elapsed = time.perf_counter() - started
    samples = {"ttft_ms": [t * 1000 for t in out["ttft"]]} if args.samples else {}
    return samples | {
        "mode": args.mode,
        "conversations": args.conns,
        "turns": out["turns"],
        "failed": out["failed"],
        "errors": out["errors"],
        "lost": out["lost"],
        "acked": out["acked"],
        "timeouts": out["timeouts"],
        "seconds": elapsed,
        "per_second": out["turns"] / elapsed,
        "latency_p50_ms": (pct(out["latency"], 0.5) or 0) * 1000,
        "ttft_p50_ms": (pct(out["ttft"], 0.5) or 0) * 1000,
        "ttft_p95_ms": (pct(out["ttft"], 0.95) or 0) * 1000,
        "gap_p50_ms": (pct(out["gaps"], 0.5) or 0) * 1000,
        "gap_p99_ms": (pct(out["gaps"], 0.99) or 0) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--mode", choices=["echo", "turns", "chatkit", "hold"], required=True)
    parser.add_argument("--conns", type=int, default=1)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--text", default="I was charged twice for my subscription")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--fresh", action="store_true", help="a new conversation per turn")
    parser.add_argument("--samples", action="store_true", help="also every time to first token")
    parser.add_argument("--stream", action="store_true", help="hold: each with a reply streaming")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args))))


if __name__ == "__main__":
    main()
