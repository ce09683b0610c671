"""routing_eval's cross-domain protocols: leave domains out, CLINC150's own splits."""

import json

import numpy as np
import pytest
from django.core.management import CommandError, call_command

# A small registry, about the size of the seed team's agents.
REGISTRY = {
    "billing": [
        "I was charged twice this month",
        "please refund my last payment",
        "how do I update my credit card",
        "where can I download my invoice",
        "why did my subscription price go up",
        "cancel my plan and stop billing me",
        "the payment failed but money left my account",
        "can I pay yearly instead of monthly",
    ],
    "tech": [
        "the app crashes when I open it",
        "I get error 500 on the dashboard",
        "sync stopped working on my phone",
        "the page will not load in Firefox",
        "uploads fail halfway through",
        "the desktop client freezes on startup",
        "notifications are not arriving",
        "the API returns a timeout",
    ],
    "account": [
        "I forgot my password",
        "how do I change the email on my account",
        "add a teammate to my workspace",
        "turn on two-factor authentication",
        "I am locked out of my account",
        "delete my account permanently",
        "change my username",
        "remove a user from our team",
    ],
}


def _jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture
def registry_files(tmp_path):
    examples = _jsonl(
        tmp_path / "examples.jsonl",
        [{"text": t, "agent": a} for a, texts in REGISTRY.items() for t in texts]
        + [{"text": "tell me a joke", "agent": "fallback"}],
    )
    cases = _jsonl(
        tmp_path / "cases.jsonl",
        [
            {"text": "refund me please", "expected": "billing"},
            {"text": "error 500 again", "expected": "tech"},
            {"text": "reset my password", "expected": "account"},
            {"text": "sing me a song", "expected": "fallback"},
        ],
    )
    return examples, cases


def test_leave_domains_out_reports_each_rotation_and_the_mean_and_worst(registry_files, capsys):
    examples, cases = registry_files
    call_command(
        "routing_eval",
        *("--examples", examples, "--cases", cases, "--json"),
        *("--leave-domains-out", "1", "--rotations", "3", "--without-embeddings"),
    )
    result = json.loads(capsys.readouterr().out)
    held = [tuple(run["held_out"]) for run in result["rotations"]]
    assert len(held) == 3 and len(set(held)) == 3  # distinct rotations
    for run in result["rotations"]:
        assert run["cases"] == 4 and run["train_seconds"] >= 0
    recalls = [run["fallback_recall"] for run in result["rotations"]]
    assert result["worst_fallback_recall"] == min(recalls)
    assert result["mean_fallback_recall"] == pytest.approx(np.mean(recalls), abs=1e-4)


def test_leave_domains_out_refuses_to_hold_out_every_agent(registry_files):
    examples, cases = registry_files
    with pytest.raises(CommandError, match="between 1 and 2"):
        call_command(
            "routing_eval", "--examples", examples, "--cases", cases, "--leave-domains-out", "3"
        )


def _clinc(tmp_path, data, domains):
    (tmp_path / "data_full.json").write_text(json.dumps(data))
    if domains is not None:
        (tmp_path / "domains.json").write_text(json.dumps(domains))
    return tmp_path / "data_full.json"


def test_clinc_full_trains_on_train_and_measures_the_chosen_split(tmp_path, capsys):
    intents = {"billing": ["refund"], "tech": ["crash"]}
    train = [[t, "refund"] for t in REGISTRY["billing"]] + [[t, "crash"] for t in REGISTRY["tech"]]
    data = {
        "train": train,
        "oos_train": [["tell me a joke", "oos"]],
        "test": [["refund my payment", "refund"], ["the app crashes", "crash"]],
        "oos_test": [["sing me a song", "oos"]],
    }
    path = _clinc(tmp_path, data, intents)
    call_command("routing_eval", "--clinc-full", path, "--split", "test", "--json", "--retrain")
    result = json.loads(capsys.readouterr().out)
    assert result["cases"] == 3 and result["in_scope_accuracy"] is not None
    assert result["retrain_seconds"] >= 0


@pytest.mark.parametrize(
    ("data", "domains", "message"),
    [
        ({"train": []}, None, "domains.json"),
        ({"train": []}, {"a": ["x"]}, "no oos_train, test, oos_test rows"),
        (
            {"train": [["hi", "nope"]], "oos_train": [], "test": [], "oos_test": []},
            {"a": ["x"]},
            "of no known domain",
        ),
    ],
)
def test_clinc_full_explains_bad_input(tmp_path, data, domains, message):
    path = _clinc(tmp_path, data, domains)
    with pytest.raises(CommandError, match=message):
        call_command("routing_eval", "--clinc-full", path)


def test_clinc_full_that_is_not_json_and_a_missing_cases_file_are_explained(tmp_path):
    path = tmp_path / "data_full.json"
    path.write_text("{not json")
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("routing_eval", "--clinc-full", path)
    with pytest.raises(CommandError, match="Give --examples and --cases"):
        call_command("routing_eval", "--examples", path)
