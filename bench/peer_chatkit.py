"""The peer: the same agents served by OpenAI's ChatKit server SDK, stock.

A minimal `ChatKitServer` with an in-memory store (threads and items in dicts, no
attachments), whose `respond` runs the team's agents exactly as bench/sdk_alone.py
builds them (orchestrator.sdk.team.build_team from the registry, the orchestrator
first) with `Runner.run_streamed`, and converts the run with ChatKit's
`stream_agent_response`, as ChatKit's own samples do. Served over HTTP:

    uvicorn bench.peer_chatkit:app      # POST /chatkit (ChatKit requests), GET /healthz

Needs the same environment as the server (DATABASE_URL for the team registry and the
knowledge base, OPENAI_BASE_URL, OPENAI_API_KEY, SUPERORCH_DEFAULT_MODEL). Bench only:
`openai-chatkit` is in the `bench` optional dependencies.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import django
from agents import RunConfig, Runner
from asgiref.sync import sync_to_async
from chatkit.agents import AgentContext, simple_to_agent_input, stream_agent_response
from chatkit.server import ChatKitServer, StreamingResult
from chatkit.store import NotFoundError, Store
from chatkit.types import (
    Attachment,
    Page,
    ThreadItem,
    ThreadMetadata,
    ThreadStreamEvent,
    UserMessageItem,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

MAX_RECENT_ITEMS = 30  # as in ChatKit's samples


class MemoryStore(Store[dict]):
    """Threads and their items in memory; attachments are not supported."""

    def __init__(self) -> None:
        self.threads: dict[str, ThreadMetadata] = {}
        self.items: dict[str, list[ThreadItem]] = {}

    async def load_thread(self, thread_id: str, context: dict) -> ThreadMetadata:
        try:
            return self.threads[thread_id].model_copy(deep=True)
        except KeyError:
            raise NotFoundError(f"thread {thread_id} not found") from None

    async def save_thread(self, thread: ThreadMetadata, context: dict) -> None:
        self.threads[thread.id] = thread.model_copy(deep=True)
        self.items.setdefault(thread.id, [])

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: dict
    ) -> Page[ThreadMetadata]:
        threads = sorted(self.threads.values(), key=lambda t: t.created_at, reverse=order == "desc")
        return _page(threads, after, limit)

    async def delete_thread(self, thread_id: str, context: dict) -> None:
        self.threads.pop(thread_id, None)
        self.items.pop(thread_id, None)

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: dict
    ) -> Page[ThreadItem]:
        items = self.items.get(thread_id, [])
        return _page(list(reversed(items)) if order == "desc" else list(items), after, limit)

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: dict) -> None:
        self.items.setdefault(thread_id, []).append(item.model_copy(deep=True))

    async def save_item(self, thread_id: str, item: ThreadItem, context: dict) -> None:
        items = self.items.setdefault(thread_id, [])
        for i, existing in enumerate(items):
            if existing.id == item.id:
                items[i] = item.model_copy(deep=True)
                return
        items.append(item.model_copy(deep=True))

    async def load_item(self, thread_id: str, item_id: str, context: dict) -> ThreadItem:
        for item in self.items.get(thread_id, []):
            if item.id == item_id:
                return item.model_copy(deep=True)
        raise NotFoundError(f"item {item_id} not found")

    async def delete_thread_item(self, thread_id: str, item_id: str, context: dict) -> None:
        self.items[thread_id] = [i for i in self.items.get(thread_id, []) if i.id != item_id]

    async def save_attachment(self, attachment: Attachment, context: dict) -> None:
        raise NotImplementedError("attachments are not supported")

    async def load_attachment(self, attachment_id: str, context: dict) -> Attachment:
        raise NotImplementedError("attachments are not supported")

    async def delete_attachment(self, attachment_id: str, context: dict) -> None:
        raise NotImplementedError("attachments are not supported")


def _page(rows: list, after: str | None, limit: int) -> Page:
    start = 0
    if after:
        start = next((i + 1 for i, r in enumerate(rows) if r.id == after), len(rows))
    data = rows[start : start + limit]
    more = start + limit < len(rows)
    return Page(data=data, has_more=more, after=data[-1].id if more and data else None)


class PeerServer(ChatKitServer[dict]):
    """Runs the team from its orchestrator, as the SDK alone does, for each user message."""

    def __init__(self) -> None:
        super().__init__(MemoryStore())
        self.team: Any = None
        self.start: Any = None

    async def setup(self) -> None:
        # The same agents as bench/sdk_alone.py, built the same way.
        from orchestrator import selectors
        from orchestrator.sdk.team import build_team

        self.team = await sync_to_async(selectors.team_snapshot)()
        built = await sync_to_async(
            lambda: build_team(self.team, router=selectors.router_for(self.team))
        )()
        self.start = built.agents[self.team.orchestrator.slug]

    async def respond(
        self, thread: ThreadMetadata, input_user_message: UserMessageItem | None, context: dict
    ) -> AsyncIterator[ThreadStreamEvent]:
        from orchestrator.sdk.context import TurnContext

        items = await self.store.load_thread_items(
            thread.id, None, MAX_RECENT_ITEMS, "desc", context
        )
        agent_input = await simple_to_agent_input(list(reversed(items.data)))
        agent_context = AgentContext(thread=thread, store=self.store, request_context=context)
        result = Runner.run_streamed(
            self.start,
            input=agent_input,
            # The agents' tools expect the runtime's context, as in the SDK-alone run.
            context=TurnContext(uuid.uuid4(), uuid.uuid4(), self.team),
            run_config=RunConfig(tracing_disabled=True),
        )
        async for event in stream_agent_response(agent_context, result):
            yield event


os.environ.setdefault("DJANGO_SETTINGS_MODULE", "superorch_site.settings.local")
django.setup()
server = PeerServer()


async def chatkit_endpoint(request: Request) -> Response:
    result = await server.process(await request.body(), {"request": request})
    if isinstance(result, StreamingResult):
        return StreamingResponse(result, media_type="text/event-stream")
    return Response(content=result.json, media_type="application/json")


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    await server.setup()
    yield


app = Starlette(
    routes=[
        Route("/chatkit", chatkit_endpoint, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ],
    lifespan=lifespan,
)
