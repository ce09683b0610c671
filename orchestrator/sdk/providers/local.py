"""The local offline model: our own implementation of the Agents SDK's `Model` interface.

It is a real, deterministic decision procedure, not a language model:
- as a router (an agent with handoffs), it scores the handoff targets with the
  registry's routing examples and descriptions and emits the SDK's handoff call
  (`transfer_to_<agent>`) when one fits, the fallback when nothing does, and
  keeps a follow-up with the current specialist unless another clearly fits;
- as a specialist, it calls its `search_knowledge` tool with the user's words
  (and, for a follow-up, the support team's hand-back note and their previous
  messages) and answers with the one section
  that fits best and was not shown yet in the conversation, a link to the full
  article on the help centre and a question that moves on (orchestrator/answers.py),
  or says plainly that it has nothing relevant;
- as the fallback, it says what the team can help with.
Replies stream word by word through the same SDK streaming path as any model, at a
reading pace capped by a budget for the whole reply.
Usage is counted in the model's own tokens (words and punctuation).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from agents import Handoff, Model, ModelResponse, ModelSettings, ModelTracing, Tool, Usage
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
    ResponseUsage,
)
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from ... import action_picking, answers
from ...domain.attachments import note_name
from ...domain.enums import AgentRole
from ...domain.team import AgentSpec, Team
from ...model_choice import LOCAL_MODEL_NAME
from ...router import Router
from ..context import handback_note_in

_TOKEN = re.compile(r"\w+|[^\w\s]")
_CHUNK = re.compile(r"\S+\s*|\s+")
# In the chat's languages too (docs/widget.md, "Languages"): de, fr, es, ar.
_GREETING = re.compile(
    r"^\s*(hi|hello|hey|good (morning|afternoon|evening)|howdy|greetings"
    r"|hallo|guten (morgen|tag|abend)|servus|moin|bonjour|bonsoir|salut|hola"
    r"|buen[oa]s (d[ií]as|tardes|noches)|مرحبا|أهلا|اهلا|السلام عليكم)\b",
    re.IGNORECASE,
)
_THANKS = re.compile(
    r"^\s*(thanks|thank you|thx|cheers|great|perfect|ok(ay)?"
    r"|danke|vielen dank|merci|gracias|شكرا|شكرًا)\b",
    re.IGNORECASE,
)


def stream_pause(chunks: int, *, delay: float, reply_seconds: float) -> float:
    """Seconds before each chunk: the reading pace (`delay`), shortened so that the whole
    reply takes at most `reply_seconds` (0 or less: no budget)."""
    if chunks <= 0 or delay <= 0:
        return 0.0
    return min(delay, reply_seconds / chunks) if reply_seconds > 0 else delay


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def _get(item: Any, key: str, default: Any = None) -> Any:
    if isinstance(item, dict):
        return item.get(key, default)
    return getattr(item, key, default)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(_get(part, "text", "") or "") for part in content)
    return ""


def _words_and_files(content: Any) -> tuple[str, list[str]]:
    """A user message's own words, and the names of the files it came with (the notes
    orchestrator.sdk.inputs adds: this model cannot look inside a file)."""
    if not isinstance(content, list):
        return _text_of(content), []
    words, files = [], []
    for part in content:
        text = str(_get(part, "text", "") or "")
        name = note_name(text)
        if name is not None:
            files.append(name)
        elif text:
            words.append(text)
    return " ".join(words), files


def received_files(names: list[str]) -> str:
    """The offline model's words for a file: received, and a person will look at it."""
    listed = ", ".join(f"**{name}**" for name in names)
    return _(
        "Thank you, I've received your file {files}. I can't look inside files myself, "
        "but a person from our team can look at it. Tell me in a few words what it is "
        "about and I'll help you meanwhile."
    ).format(files=listed)


def _with_files_received(items: list[Any], decision: Any) -> Any:
    """The reply (words end the run: said once) to a message that came with a file and
    words says first that the file arrived; a tool call is left as it is."""
    users = [it for it in items if _get(it, "role") == "user"]
    if not isinstance(decision, str) or not users:
        return decision
    words, files = _words_and_files(_get(users[-1], "content"))
    if not files or not words.strip():
        return decision
    listed = ", ".join(f"**{name}**" for name in files)
    received = _("I've received your file {files}; a person from our team can look at it.")
    return received.format(files=listed) + "\n\n" + decision


def _turns(items: list[Any]) -> list[answers.Turn]:
    """The conversation's messages before the one being answered, as plain text."""
    turns = []
    for item in items:
        role = _get(item, "role")
        if role in ("user", "assistant"):
            turns.append(answers.Turn(role, _text_of(_get(item, "content"))))
    return turns


# The fallback agent's answer to an aside in a conversation already under way (the next
# on-topic message goes back to the specialist: docs/routing.md).
# Every fixed sentence here is in the conversation's language (chat.turns.runner activates it).
ASIDE_REPLY = gettext_lazy(
    "That's outside what our support team covers, so I can't help with it, I'm afraid. "
    "Whenever you're ready, just carry on with your question and we'll pick up where we left off."
)


class LocalModel(Model):
    """One instance per agent per turn; it knows which agent it speaks for."""

    def __init__(
        self,
        *,
        agent: AgentSpec,
        team: Team,
        router: Router,
        delay: float,
        reply_seconds: float = 2.0,
    ) -> None:
        self.agent = agent
        self.team = team
        self.router = router
        self.delay = delay
        self.reply_seconds = reply_seconds

    # --- the decision ---------------------------------------------------------------

    def decide(
        self, items: list[Any], tools: list[Tool], handoffs: list[Handoff], note: str = ""
    ) -> Any:
        """Return a function call output item, or the reply text. `note`: the support
        team's hand-back note from the instructions, which a follow-up is searched with."""
        last_user = max((i for i, it in enumerate(items) if _get(it, "role") == "user"), default=-1)
        content = _get(items[last_user], "content") if last_user >= 0 else ""
        user_text, files = _words_and_files(content)
        since = items[last_user + 1 :]
        calls = [it for it in since if _get(it, "type") == "function_call"]
        if files and not user_text.strip() and not calls:
            return received_files(files)  # a file alone: acknowledged, left to a person
        handed_off = any(str(_get(c, "name", "")).startswith("transfer_to_") for c in calls)
        outputs = {
            _get(it, "call_id"): _get(it, "output")
            for it in since
            if _get(it, "type") == "function_call_output"
        }

        acknowledgement = bool(_THANKS.match(user_text)) and len(user_text.split()) <= 4
        if handoffs and not handed_off:
            target = self._pick_handoff(user_text, handoffs)
            if target is not None:
                return _function_call(target.tool_name, {})

        tool_names = {t.name for t in tools}
        workflow_calls = [c for c in calls if _get(c, "name") == "execute_workflow"]
        if workflow_calls:
            return self._answer_from_workflow(outputs.get(_get(workflow_calls[-1], "call_id")))
        history = _turns(items[: max(last_user, 0)])
        actions = [a for a in self.team.actions_of(self.agent) if a.name in tool_names]
        acted = self._act_or_workflow(
            actions, calls, outputs, user_text, history, tool_names, acknowledgement
        )
        if acted is not None:
            return acted
        searches = [c for c in calls if _get(c, "name") == "search_knowledge"]
        if (
            "search_knowledge" in tool_names
            and not searches
            and user_text.strip()
            and not acknowledgement
        ):
            query = answers.search_query(user_text, _turns(items[: max(last_user, 0)]), note)
            return _function_call("search_knowledge", {"query": query})
        if searches:
            raw = outputs.get(_get(searches[-1], "call_id"))
            return self._answer_from_search(user_text, raw, _turns(items[: max(last_user, 0)]))
        if acknowledgement:
            return _("You're welcome! Is there anything else I can help you with?")
        earlier = _turns(items[: max(last_user, 0)])
        if self.agent.role == AgentRole.FALLBACK and any(t.role == "assistant" for t in earlier):
            return str(ASIDE_REPLY)  # an aside mid-conversation: no list of the team again
        return self._team_overview(user_text)

    def _act_or_workflow(
        self, actions, calls, outputs, user_text: str, history, tool_names, acknowledgement
    ) -> Any:
        """An action's call (or its answer, or a question for what it lacks), or a
        workflow; None when neither fits."""
        made = self._action_step(actions, calls, outputs, user_text, history)
        if made is not None:
            return made
        chosen = action_picking.pick(actions, text=user_text, history=history) if actions else None
        # A call the message makes complete (or a read completes) is more exact than a
        # workflow's trigger word: "refund invoice X" refunds X, "I want a refund" runs
        # the refund workflow.
        lookup = action_picking.lookup_for(actions, chosen, text=user_text) if chosen else None
        if chosen is not None and (not chosen.missing or lookup is not None):
            return _call_or_ask(lookup or chosen)
        if "execute_workflow" in tool_names and user_text.strip() and not acknowledgement:
            workflow = self.team.workflow_for(user_text)
            if workflow is not None:
                return _function_call(
                    "execute_workflow", {"workflow": workflow.slug, "request": user_text[:2000]}
                )
        return _call_or_ask(chosen) if chosen is not None else None

    def _action_step(
        self, actions, calls, outputs, user_text: str, history: list[answers.Turn]
    ) -> Any:
        """After an action's call, the answer from its output; an answer to this model's
        own question about a call completes the call (before workflow triggers count)."""
        by_name = {a.name: a for a in actions}
        made = [c for c in calls if _get(c, "name") in by_name]
        if made:
            call = made[-1]
            try:
                arguments = json.loads(_get(call, "arguments") or "{}")
            except ValueError:
                arguments = {}
            spec = by_name[_get(call, "name")]
            output = outputs.get(_get(call, "call_id"))
            # A read made first for what the call the user asked for still needs.
            wanted = action_picking.pick(actions, text=user_text, history=history)
            if wanted is not None and len(made) == 1 and wanted.action.name != spec.name:
                completed = action_picking.completed_by(wanted, output)
                if completed is not None:
                    return _function_call(completed.action.name, completed.arguments)
            return action_picking.reply(spec, arguments, output)
        if not actions:
            return None
        answered = action_picking.answer_to_question(actions, text=user_text, history=history)
        return None if answered is None else _call_or_ask(answered)

    def _pick_handoff(self, text: str, handoffs: list[Handoff]) -> Handoff | None:
        """As the orchestrator: the best-fitting handoff target, or the fallback.

        Specialists keep the turn: the routing policy already decided, before the turn,
        whether a follow-up stays with them or moves to another agent.
        """
        if self.agent.role != AgentRole.ORCHESTRATOR or not text.strip():
            return None
        by_slug: dict[str, Handoff] = {}
        for handoff in handoffs:
            spec = self.team.by_name(handoff.agent_name)
            if spec is not None:
                by_slug[spec.slug] = handoff
        fallback = next(
            (h for slug, h in by_slug.items() if self.team.agents[slug].role == AgentRole.FALLBACK),
            None,
        )
        decision = self.router.route(text, [s for s in by_slug if by_slug[s] is not fallback])
        if decision.agent is not None and decision.confidence >= self.router.threshold:
            return by_slug[decision.agent]
        return fallback

    def _answer_from_search(self, query: str, raw: Any, history: list[answers.Turn]) -> str:
        try:
            data = json.loads(raw) if isinstance(raw, str) else (raw or {})
        except (TypeError, ValueError):
            data = {}
        passages = data.get("passages") or [] if isinstance(data, dict) else []
        reply = answers.answer(
            passages, user_text=query, history=history, agent_name=self.agent.name
        )
        if reply is not None:
            return reply
        return _(
            "I'm sorry, I couldn't find anything about that in the %(agent)s "
            "knowledge base. Could you tell me a little more, for example the exact error "
            "message or what you were trying to do? Your message is saved, so a member of "
            "the support team can also follow up."
        ) % {"agent": self.agent.name}

    def _answer_from_workflow(self, raw: Any) -> str:
        try:
            data = json.loads(raw) if isinstance(raw, str) else (raw or {})
        except (TypeError, ValueError):
            data = {}
        if not isinstance(data, dict):
            data = {}
        if data.get("answer"):
            source = _("_From the %(workflow)s workflow._") % {
                "workflow": data.get("workflow") or _("team")
            }
            return f"{data['answer']}\n\n{source}"
        if data.get("ok") and data.get("message"):
            return str(data["message"])
        return _(
            "I'm sorry, I could not complete that for you: %(error)s Your request is saved, "
            "and a member of the support team will follow up."
        ) % {"error": data.get("error") or _("the workflow failed.")}

    def _team_overview(self, text: str) -> str:
        lines = []
        if _GREETING.match(text):
            lines.append(_("Hello! I'm the %(agent)s.") % {"agent": self.agent.name})
        elif self.agent.role == AgentRole.FALLBACK:
            lines.append(
                _("I'm not sure any of our specialists covers that, and I can't answer it myself.")
            )
        else:
            lines.append(
                _("I'm the %(agent)s. %(description)s")
                % {"agent": self.agent.name, "description": self.agent.handoff_description}
            )
        specialists = [a for a in self.team.specialists() if a.slug != self.agent.slug]
        if specialists:
            lines += ["", _("Our team can help you with:")]
            lines += [f"- **{a.name}**: {a.handoff_description}" for a in specialists]
            lines += ["", _("Tell me what you need and I'll bring in the right specialist.")]
        return "\n".join(lines)

    # --- the SDK interface ------------------------------------------------------------

    def _respond_in(self, language, system_instructions, input, tools, handoffs):
        """`_respond` in `language`: the active language of the turn does not follow it into
        the worker thread (asgiref keeps a thread's translation to that thread)."""
        with translation.override(language):
            return self._respond(system_instructions, input, tools, handoffs)

    def _respond(self, system_instructions, input, tools, handoffs):
        items = [{"role": "user", "content": input}] if isinstance(input, str) else list(input)
        decision = self.decide(items, tools, handoffs, handback_note_in(system_instructions))
        decision = _with_files_received(items, decision)
        prompt_tokens = count_tokens(system_instructions or "") + sum(
            count_tokens(_text_of(_get(it, "content")) or str(_get(it, "output", "") or ""))
            for it in items
        )
        return decision, prompt_tokens

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[Any],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: Any,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None = None,
        conversation_id: str | None = None,
        prompt: Any = None,
    ) -> ModelResponse:
        # Deciding may score messages with the router: CPU work, kept off the event loop.
        decision, prompt_tokens = await asyncio.to_thread(
            self._respond_in,
            translation.get_language(),
            system_instructions,
            input,
            tools,
            handoffs,
        )
        item = decision if not isinstance(decision, str) else _message(decision)
        out_tokens = count_tokens(decision if isinstance(decision, str) else item.arguments)
        return ModelResponse(
            output=[item],
            usage=Usage(
                requests=1,
                input_tokens=prompt_tokens,
                output_tokens=out_tokens,
                total_tokens=prompt_tokens + out_tokens,
            ),
            response_id=f"local-{uuid.uuid4().hex}",
        )

    async def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[Any],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: Any,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None = None,
        conversation_id: str | None = None,
        prompt: Any = None,
    ) -> AsyncIterator[Any]:
        # Deciding may score messages with the router: CPU work, kept off the event loop.
        decision, prompt_tokens = await asyncio.to_thread(
            self._respond_in,
            translation.get_language(),
            system_instructions,
            input,
            tools,
            handoffs,
        )
        response_id = f"local-{uuid.uuid4().hex}"
        seq = _Seq()
        yield ResponseCreatedEvent(
            type="response.created",
            response=_response(response_id, [], None),
            sequence_number=seq(),
        )
        if isinstance(decision, str):
            item: Any = _message(decision, f"msg_{uuid.uuid4().hex}")
            async for event in self._stream_text(decision, item.id, seq):
                yield event
            out_tokens = count_tokens(decision)
        else:
            item = decision
            for event in _stream_call(item, seq):
                yield event
            out_tokens = count_tokens(item.arguments) + 1
        yield ResponseOutputItemDoneEvent(
            type="response.output_item.done", item=item, output_index=0, sequence_number=seq()
        )
        yield ResponseCompletedEvent(
            type="response.completed",
            response=_response(response_id, [item], _usage(prompt_tokens, out_tokens)),
            sequence_number=seq(),
        )

    async def _stream_text(self, text: str, item_id: str, seq: _Seq) -> AsyncIterator[Any]:
        """A reply's events: the message added, its text word by word, the text done."""
        where = {"item_id": item_id, "output_index": 0, "content_index": 0}
        yield ResponseOutputItemAddedEvent(
            type="response.output_item.added",
            item=ResponseOutputMessage(
                id=item_id, type="message", role="assistant", status="in_progress", content=[]
            ),
            output_index=0,
            sequence_number=seq(),
        )
        yield ResponseContentPartAddedEvent(
            type="response.content_part.added",
            part=ResponseOutputText(type="output_text", text="", annotations=[]),
            sequence_number=seq(),
            **where,
        )
        chunks = _CHUNK.findall(text)
        pause = stream_pause(len(chunks), delay=self.delay, reply_seconds=self.reply_seconds)
        for chunk in chunks:
            if pause:
                await asyncio.sleep(pause)
            yield ResponseTextDeltaEvent(
                type="response.output_text.delta",
                delta=chunk,
                logprobs=[],
                sequence_number=seq(),
                **where,
            )
        yield ResponseTextDoneEvent(
            type="response.output_text.done",
            text=text,
            logprobs=[],
            sequence_number=seq(),
            **where,
        )
        yield ResponseContentPartDoneEvent(
            type="response.content_part.done",
            part=ResponseOutputText(type="output_text", text=text, annotations=[]),
            sequence_number=seq(),
            **where,
        )


def _call_or_ask(chosen: action_picking.Pick) -> Any:
    """The action's call, or the question for what it still needs."""
    if chosen.missing:
        return action_picking.ask(chosen)
    return _function_call(chosen.action.name, chosen.arguments)


def _stream_call(item: ResponseFunctionToolCall, seq: _Seq) -> list[Any]:
    """A tool call's events: the call added, its arguments at once, the arguments done."""
    item_id = item.id or item.call_id
    return [
        ResponseOutputItemAddedEvent(
            type="response.output_item.added",
            item=item.model_copy(update={"arguments": "", "status": "in_progress"}),
            output_index=0,
            sequence_number=seq(),
        ),
        ResponseFunctionCallArgumentsDeltaEvent(
            type="response.function_call_arguments.delta",
            item_id=item_id,
            output_index=0,
            delta=item.arguments,
            sequence_number=seq(),
        ),
        ResponseFunctionCallArgumentsDoneEvent.model_validate(
            {
                "type": "response.function_call_arguments.done",
                "item_id": item_id,
                "output_index": 0,
                "arguments": item.arguments,
                "name": item.name,
                "sequence_number": seq(),
            }
        ),
    ]


def _usage(prompt_tokens: int, out_tokens: int) -> ResponseUsage:
    return ResponseUsage(
        input_tokens=prompt_tokens,
        output_tokens=out_tokens,
        total_tokens=prompt_tokens + out_tokens,
        input_tokens_details=InputTokensDetails.model_validate(
            {"cached_tokens": 0, "cache_write_tokens": 0}
        ),
        output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
    )


class _Seq:
    def __init__(self) -> None:
        self.n = -1

    def __call__(self) -> int:
        self.n += 1
        return self.n


def _function_call(name: str, arguments: dict[str, Any]) -> ResponseFunctionToolCall:
    call_id = f"call_{uuid.uuid4().hex[:24]}"
    return ResponseFunctionToolCall(
        id=f"fc_{call_id[5:]}",
        call_id=call_id,
        type="function_call",
        name=name,
        arguments=json.dumps(arguments, ensure_ascii=False),
        status="completed",
    )


def _message(text: str, item_id: str | None = None) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id=item_id or f"msg_{uuid.uuid4().hex}",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )


def _response(response_id: str, output: list[Any], usage: ResponseUsage | None) -> Response:
    return Response(
        id=response_id,
        created_at=time.time(),
        model=LOCAL_MODEL_NAME,
        object="response",
        output=output,
        tool_choice="auto",
        tools=[],
        top_p=None,
        parallel_tool_calls=False,
        status="completed" if usage is not None else "in_progress",
        usage=usage,
    )
