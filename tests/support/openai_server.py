"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks.

It speaks Chat Completions (streaming SSE and not). Each request is answered
by the next scripted step, or by a responder function that looks at the
request. Steps can also inject faults (HTTP errors, stalls, broken streams).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Step:
    text: str | None = None
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int = 200  # != 200: answer with this HTTP error
    first_token_delay: float = 0.0
    token_delay: float = 0.0
    break_after: int | None = None  # close the stream after this many chunks
    malformed: bool = False  # send a chunk that is not JSON


Responder = Callable[[dict[str, Any]], Step]


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the concurrency benchmark opens a thousand streams at once


class OpenAICompatibleServer:
    def __init__(self, port: int = 0) -> None:
        self.steps: list[Step] = []
        self.responder: Responder | None = None
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.endswith("/chat/completions"):
                    self._json(404, {"error": {"message": "not found"}})
                    return
                with server._lock:
                    server.requests.append(body)
                    step = server._next(body)
                if step.status != 200:
                    self._json(
                        step.status,
                        {"error": {"message": "injected failure", "type": "server_error"}},
                    )
                    return
                if body.get("stream"):
                    self._stream(body, step)
                else:
                    if step.first_token_delay:  # the whole answer's latency
                        time.sleep(step.first_token_delay)
                    if step.malformed:
                        payload = b"{this is not json"
                        self.send_response(200)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload)
                        return
                    self._json(200, _completion(body, step))

            def _json(self, status: int, data: dict[str, Any]) -> None:
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _stream(self, body: dict[str, Any], step: Step) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                if step.first_token_delay:
                    time.sleep(step.first_token_delay)
                for n, chunk in enumerate(_chunks(body, step)):
                    if step.break_after is not None and n >= step.break_after:
                        return  # the connection closes mid-stream
                    if step.malformed and n == 1:
                        self.wfile.write(b"data: {this is not json\n\n")
                        self.wfile.flush()
                        return
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                    if step.token_delay:
                        time.sleep(step.token_delay)
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

        self.httpd = _HTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def _next(self, body: dict[str, Any]) -> Step:
        if self.steps:
            return self.steps.pop(0)
        if self.responder is not None:
            return self.responder(body)
        return Step(text="(no scripted reply)")

    def start(self) -> OpenAICompatibleServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _usage(body: dict[str, Any], step: Step) -> dict[str, int]:
    prompt = sum(len(str(m.get("content") or "").split()) for m in body.get("messages", []))
    completion = len((step.text or "").split()) + 5 * len(step.tool_calls)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _tool_call_dicts(step: Step) -> list[dict[str, Any]]:
    return [
        {
            "index": i,
            "id": f"call_{uuid.uuid4().hex[:20]}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        for i, (name, args) in enumerate(step.tool_calls)
    ]


def _completion(body: dict[str, Any], step: Step) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": step.text}
    if step.tool_calls:
        message["tool_calls"] = [
            {k: v for k, v in c.items() if k != "index"} for c in _tool_call_dicts(step)
        ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "test-model"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if step.tool_calls else "stop",
            }
        ],
        "usage": _usage(body, step),
    }


def _chunks(body: dict[str, Any], step: Step):
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "test-model"),
    }

    def chunk(delta: dict[str, Any], finish: str | None = None, usage: dict | None = None):
        data = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        if usage is not None:
            data["usage"] = usage
        return data

    yield chunk({"role": "assistant", "content": ""})
    if step.text:
        words = step.text.split(" ")
        for i, word in enumerate(words):
            yield chunk({"content": word + (" " if i < len(words) - 1 else "")})
    for call in _tool_call_dicts(step):
        yield chunk({"tool_calls": [call]})
    yield chunk({}, "tool_calls" if step.tool_calls else "stop")
    if (body.get("stream_options") or {}).get("include_usage"):
        yield {**base, "choices": [], "usage": _usage(body, step)}
