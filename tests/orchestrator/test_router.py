"""The router (both modes), its store (background retraining) and `routing_eval`."""

import json
import threading

import pytest
from django.core.management import CommandError, call_command

from orchestrator import router_store
from orchestrator.router import Router

DOCUMENTS = {
    "billing": ["refund my payment", "invoice question", "I was charged twice", "update my card"],
    "tech": ["app crashes", "error code 500", "the page will not load", "login fails"],
}
FALLBACK = ["tell me a joke", "what is the weather today", "who won the match", "sing a song"]


def test_tfidf_mode_without_the_embedding_weights_still_routes_and_rejects():
    router = Router(DOCUMENTS, fallback_examples=FALLBACK, embeddings=False)
    assert router.mode == "tfidf"
    assert router.route("I want a refund for my payment").agent == "billing"
    assert router.route("the app crashes with an error code").agent == "tech"
    assert router.route("zebra penguin xylophone").agent is None


def test_route_restricted_to_candidates():
    router = Router(DOCUMENTS, fallback_examples=FALLBACK)
    decision = router.route("I was charged twice", candidates=["tech"])
    assert [a for a, _ in decision.ranked] == ["tech"]
    assert router.route("anything", candidates=["nobody"]).agent is None


def test_a_router_needs_routing_text():
    with pytest.raises(ValueError, match="at least one agent"):
        Router({"billing": ["", "  "]}, fallback_examples=FALLBACK)


class _SlowRouter:
    """Stands in for Router in the store: training blocks until the test releases it."""

    release = threading.Event()

    def __init__(self, documents, fallback_examples=()):
        self.release.wait(10)
        self.documents = documents


def test_store_answers_with_the_previous_router_while_the_new_one_trains(monkeypatch):
    monkeypatch.setattr(router_store, "Router", _SlowRouter)
    store = router_store.RouterStore()
    _SlowRouter.release.set()
    first = store.get({"a": ["one"]}, [], background=True)  # cold: waits
    assert first.documents == {"a": ["one"]}
    _SlowRouter.release.clear()
    stale = store.get({"a": ["one", "two"]}, [], background=True)
    assert stale is first  # the edited registry trains meanwhile
    _SlowRouter.release.set()
    fresh = store.get({"a": ["one", "two"]}, [], background=False)
    assert fresh.documents == {"a": ["one", "two"]}
    assert store.get({"a": ["one", "two"]}, [], background=True) is fresh
    assert store.get({"a": ["one"]}, [], background=True) is first  # still kept


def test_store_reports_a_failed_training_and_tries_again(monkeypatch, caplog):
    calls = []

    def failing(documents, fallback_examples=()):
        calls.append(1)
        raise ValueError("no text")

    monkeypatch.setattr(router_store, "Router", failing)
    store = router_store.RouterStore()
    for _ in range(2):
        with pytest.raises(ValueError):
            store.get({"a": ["x"]}, [], background=True)
    assert len(calls) == 2
    assert "Training the router failed" in caplog.text


def test_a_saved_router_is_loaded_by_the_next_process_instead_of_trained(tmp_path, monkeypatch):
    def store():
        return router_store.RouterStore(directory=lambda: tmp_path, secret=lambda: b"k1")

    first = store().get(DOCUMENTS, FALLBACK, background=False)
    (saved,) = tmp_path.glob("*.router")
    # A new store (as a process that starts) loads it: no training at all.
    monkeypatch.setattr(router_store, "Router", _never_trained)
    loaded = store().get(DOCUMENTS, FALLBACK, background=False)
    assert loaded is not first and loaded.mode == first.mode
    for text in ("I was charged twice", "the app crashes", "sing me a song"):
        assert loaded.route(text) == first.route(text)


def test_a_saved_router_signed_with_another_secret_or_damaged_is_trained_again(tmp_path):
    router_store.RouterStore(directory=lambda: tmp_path, secret=lambda: b"k1").get(
        DOCUMENTS, FALLBACK, background=False
    )
    (saved,) = tmp_path.glob("*.router")
    other = router_store.RouterStore(directory=lambda: tmp_path, secret=lambda: b"k2")
    assert other._load(saved.name.split("-")[0]) is None  # not unpickled
    saved.write_bytes(b"\0" * 40)
    mine = router_store.RouterStore(directory=lambda: tmp_path, secret=lambda: b"k1")
    router = mine.get(DOCUMENTS, FALLBACK, background=False)  # trains, and saves anew
    assert router.route("I was charged twice").agent == "billing"
    assert mine._load(saved.name.split("-")[0]) is not None


def _never_trained(*args, **kwargs):
    raise AssertionError("the saved router should have been loaded")


# --- routing_eval -------------------------------------------------------------------


def _jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_routing_eval_prints_the_figures_as_json(tmp_path, capsys):
    examples = _jsonl(
        tmp_path / "examples.jsonl",
        [{"text": t, "agent": a} for a, texts in DOCUMENTS.items() for t in texts]
        + [{"text": t, "agent": "fallback"} for t in FALLBACK],
    )
    cases = _jsonl(
        tmp_path / "cases.jsonl",
        [
            {"text": "please refund my payment", "expected": "billing"},
            {"text": "the app crashes on login", "expected": "tech"},
            {"text": "tell me a joke about cats", "expected": "fallback"},
        ],
    )
    call_command("routing_eval", "--examples", examples, "--cases", cases, "--json")
    result = json.loads(capsys.readouterr().out)
    assert {"in_scope_accuracy", "fallback_recall", "fallback_precision", "ms_per_route"} <= set(
        result
    )
    assert result["cases"] == 3
    assert result["in_scope_accuracy"] == 1.0 and result["fallback_recall"] == 1.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"text": "hi", "agent": "a"}\nnot json\n', "line 2: not valid JSON"),
        ('{"text": "hi"}\n', "line 1: expected an object with text fields text, agent"),
        ("\n", "has no rows"),
        ('{"text": "hi", "agent": "fallback"}\n', "at least one agent"),
    ],
)
def test_routing_eval_explains_bad_input(tmp_path, content, message):
    examples = tmp_path / "examples.jsonl"
    examples.write_text(content)
    cases = _jsonl(tmp_path / "cases.jsonl", [{"text": "x", "expected": "a"}])
    with pytest.raises(CommandError, match=message):
        call_command("routing_eval", "--examples", examples, "--cases", cases)


def test_routing_eval_reports_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("routing_eval", "--examples", tmp_path / "nope", "--cases", tmp_path / "nope")
