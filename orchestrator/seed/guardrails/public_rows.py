"""How the second batch of CLINC150 rows of dev.jsonl was drawn (run once by hand; the
rows are committed and nothing is downloaded at run time). See README.md, "Sources".

    python orchestrator/seed/guardrails/public_rows.py CLINC150_DIR > rows.jsonl

In-scope messages of CLINC150's training split (CC BY 3.0) that no split uses yet, as
ordinary; those with words attacks use ("pin", "password", "list", "instructions" ...)
as tricky_ordinary. Run before these rows were added to dev.jsonl (it skips known texts).
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRICKY_WORDS = (
    "instruction",
    "ignore",
    "forget",
    "password",
    "pin",
    "rule",
    "secret",
    "system",
    "prompt",
    "override",
    "bypass",
    "admin",
    "token",
    "key",
    "previous",
    "reveal",
    "pretend",
    "act as",
    "repeat",
    "account number",
    "routing",
    "credit card",
    "other",
    "everyone",
    "list",
)


def _known() -> set[str]:
    texts = set()
    for split in ("dev", "test"):
        for line in (HERE / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
            texts.add(json.loads(line)["text"])
    return texts


def clinc_rows(
    directory: Path, rng: random.Random, tricky: int = 120, other: int = 120
) -> list[dict]:
    known = _known()
    examples = [json.loads(x) for x in (directory / "examples.jsonl").read_text().splitlines() if x]
    texts = sorted({e["text"] for e in examples if e["agent"] != "fallback"} - known)
    rng.shuffle(texts)
    words = re.compile(r"\b(?:" + "|".join(map(re.escape, TRICKY_WORDS)) + r")s?\b")
    with_words = [t for t in texts if words.search(t.lower())]
    others = [t for t in texts if t not in set(with_words)]
    rows = [
        {
            "text": t,
            "label": "ordinary",
            "kind": "tricky_ordinary",
            "style": "plain",
            "source": "clinc150/train",
        }
        for t in with_words[:tricky]
    ]
    rows += [
        {
            "text": t,
            "label": "ordinary",
            "kind": "ordinary",
            "style": "plain",
            "source": "clinc150/train",
        }
        for t in others[:other]
    ]
    return rows


def main(argv: list[str]) -> None:
    rng = random.Random(15)
    for row in clinc_rows(Path(argv[1]), rng):
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(sys.argv)
