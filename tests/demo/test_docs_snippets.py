"""docs/actions.md's verification snippets accept what actions send and refuse the rest
(the Python one here, the Node one under node when it is installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator.alerts import webhook_signature

DOC = (Path(__file__).resolve().parents[2] / "docs" / "actions.md").read_text(encoding="utf-8")
SECRET = "whsec-demo-0123456789"
BODY = b'{"invoice":"ACME-2024-000123","amount":"49.00"}'


def snippet(language: str) -> str:
    name = (
        "def superorch_request_valid" if language == "python" else "function superorchRequestValid"
    )
    return next(b for b in re.findall(rf"```{language}\n(.*?)```", DOC, re.S) if name in b)


def cases() -> list[tuple[dict, bytes, bool]]:
    now = str(int(time.time()))
    good = {
        "X-Superorch-Timestamp": now,
        "X-Superorch-Signature": webhook_signature(SECRET, now, BODY),
    }
    old = str(int(time.time()) - 600)
    stale = {
        "X-Superorch-Timestamp": old,
        "X-Superorch-Signature": webhook_signature(SECRET, old, BODY),
    }
    return [(good, BODY, True), (good, BODY + b" ", False), (stale, BODY, False), ({}, BODY, False)]


def test_the_python_snippet_verifies_signatures():
    namespace: dict = {}
    exec(snippet("python"), namespace)  # noqa: S102 (our own documentation)
    check = namespace["superorch_request_valid"]
    for headers, body, expected in cases():
        assert check(SECRET, headers, body) is expected


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_the_node_snippet_verifies_signatures(tmp_path):
    script = tmp_path / "check.js"
    vectors = [
        {"headers": {k.lower(): v for k, v in h.items()}, "body": b.decode(), "expected": e}
        for h, b, e in cases()
    ]
    script.write_text(
        snippet("js")
        + f"\nconst vectors = {json.dumps(vectors)};\n"
        + "for (const v of vectors) {\n"
        + f"  const got = superorchRequestValid({json.dumps(SECRET)}, v.headers, Buffer.from(v.body));\n"
        + "  if (got !== v.expected) { console.error(JSON.stringify(v)); process.exit(1); }\n"
        + "}\nconsole.log('ok');\n"
    )
    done = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
