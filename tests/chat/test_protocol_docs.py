"""docs/protocol.md, chat/protocol.py and the page's JavaScript agree on the frames."""

from __future__ import annotations

import re
from pathlib import Path

from chat import protocol, staff_consumer

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
SCRIPTS = sorted((ROOT / "static" / "superorch").glob("**/*.js"))

# A frame-type literal in JavaScript: `case "turn.done"`, `type: 'message.send'`,
# `f.type === "message.delta"`, in any quotes. Frame types are dotted (`conversation.status`
# would be next); the four one-word ones are matched by name, since the same scripts
# switch on one-word types of their own (postMessage events, button and chart types).
_ONE_WORD = ("ping", "pong", "error", "feedback", "csat")
_QUOTED = rf"""["'`]([a-z]+\.[a-z_]+|{"|".join(_ONE_WORD)})["'`]"""
_JS_FRAME = re.compile(
    rf"""(?:\bcase\s+{_QUOTED}|\btype\s*:\s*{_QUOTED}|\.type\s*[!=]==?\s*{_QUOTED}"""
    rf"""|{_QUOTED}\s*[!=]==?\s*[\w.]*\.type\b"""
    # a handler table's key: `{ "message.delta": onDelta }`
    rf"""|{_QUOTED}\s*:\s*[A-Za-z_$])"""
)


def test_the_one_word_frame_types_are_all_the_protocol_has():
    one_word = {n for n in [*protocol.CLIENT_FRAMES, *protocol.SERVER_FRAMES] if "." not in n}
    assert one_word == set(_ONE_WORD)


def _documented(name: str) -> bool:
    return f"`{name}`" in DOCS or f'"type": "{name}"' in DOCS


def test_the_docs_name_every_frame_type_the_module_defines():
    for name in [*protocol.CLIENT_FRAMES, *protocol.SERVER_FRAMES]:
        assert _documented(name), f"docs/protocol.md does not name the frame type {name!r}"


def test_the_docs_name_every_error_code_and_close_code():
    for code in protocol.ErrorCode:
        assert f"`{code.value}`" in DOCS, f"docs/protocol.md does not name the error code {code!r}"
    for close in protocol.CloseCode:
        assert str(int(close)) in DOCS, f"docs/protocol.md does not name the close code {close}"


def test_the_docs_give_the_documented_limits():
    limits = protocol.Limits
    assert f"| client message id | {limits.CLIENT_ID_CHARS} characters |" in DOCS
    assert f"| feedback comment | {limits.COMMENT_CHARS:,} characters |" in DOCS


def _js_frame_types() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for script in SCRIPTS:
        for match in _JS_FRAME.finditer(script.read_text(encoding="utf-8")):
            name = next(group for group in match.groups() if group)
            found.setdefault(name, set()).add(str(script.relative_to(ROOT)))
    return found


def test_the_module_defines_every_frame_type_the_javascript_names():
    found = _js_frame_types()
    # The page sends and handles most of the protocol: finding few means the pattern broke.
    assert {"session.start", "message.send", "session.ready", "message.delta", "turn.done"} <= set(
        found
    ), sorted(found)
    known = set(protocol.CLIENT_FRAMES) | set(protocol.SERVER_FRAMES)
    # The staff inbox's socket has frames of its own (chat/staff_consumer.py), for inbox.js only.
    staff = {"static/superorch/inbox.js"}
    unknown = {
        name: files
        for name, files in found.items()
        if name not in known and not (name in staff_consumer.FRAMES and files <= staff)
    }
    assert not unknown, f"frame types the JavaScript names but chat/protocol.py lacks: {unknown}"


def test_the_pattern_finds_frame_types_however_the_javascript_writes_them():
    sample = """
      switch (f.type) { case "turn.done": break; case 'message.delta': break; }
      send({ type: `message.send`, id });
      if (frame.type === "pong") {}
      if ('error' == msg.type) {}
      const handlers = { 'session.ready': onReady, "tool.started": onTool };
      const el = document.querySelector('.message.delta');  // not a frame
    """
    names = {next(g for g in m.groups() if g) for m in _JS_FRAME.finditer(sample)}
    assert names == {
        "turn.done", "message.delta", "message.send", "pong", "error", "session.ready",
        "tool.started",
    }  # fmt: skip
    assert not list(_JS_FRAME.finditer("case 'init': break; button.type = 'button';"))
