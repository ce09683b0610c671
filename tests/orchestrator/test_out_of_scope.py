"""The out-of-scope detector: topics never seen in training, its cross-validated
threshold, the cost of training, and routing_eval's cross-domain protocols."""

import json

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from orchestrator import router as router_module
from orchestrator.router import FALLBACK, Router, choose_threshold, topic_folds

# A small registry, about the size of the seed team's agents, and no fallback examples.
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
OFF_TOPIC = [
    "what's a good recipe for banana bread",
    "who won the football world cup in 2010",
    "what will the weather be like in Paris tomorrow",
    "recommend me a novel about space travel",
    "how tall is mount everest",
]


@pytest.fixture(scope="module")
def router():
    return Router(REGISTRY)


def test_a_small_registry_without_fallback_examples_rejects_topics_it_never_saw(router):
    for text in OFF_TOPIC:
        assert router.route(text).agent is None, text
    assert router.route("my card was charged two times").agent == "billing"
    assert router.route("the mobile app keeps crashing").agent == "tech"
    assert router.route("I can't remember my password").agent == "account"


def test_the_threshold_comes_from_folds_that_leave_whole_agents_out(router):
    labels = np.array([a for a, texts in REGISTRY.items() for _ in texts], dtype=object)
    folds = topic_folds(labels, None, 5, seed=0)
    left_out = set()
    for train, test_in, test_out in folds:
        trained = set(labels[train])
        assert not trained & set(labels[test_out])  # an unseen topic, not unseen rows
        assert set(labels[test_in]) <= trained
        assert not set(train) & (set(test_in) | set(test_out))
        left_out |= set(labels[test_out])
    assert left_out == set(REGISTRY)  # every agent stands in for out-of-scope once
    # Calibration scored every held-out case: in-scope rows and left-out agents' rows.
    assert router.calibration["cases"] > len(labels)


def test_choose_threshold_balances_kept_in_scope_cases_against_recall():
    gold = np.array(["a"] * 100 + [FALLBACK] * 20, dtype=object)
    predicted = np.array(["a"] * 120, dtype=object)
    score = np.concatenate([np.linspace(1, 2, 100), np.linspace(-1, 0.5, 20)])
    threshold = choose_threshold(predicted, score, gold)
    assert 0.5 < threshold <= 1.0  # rejects every out-of-scope case, keeps all in-scope
    # Nothing out of scope to learn from: reject the lowest 2 % of in-scope cases.
    in_only = choose_threshold(predicted[:100], score[:100], gold[:100])
    assert in_only == pytest.approx(np.quantile(score[:100], 0.02))


def test_training_counts_the_corpus_once_and_fits_one_classifier_per_fold(monkeypatch):
    fits, counts = [], []
    real_svc, real_counter = router_module.LinearSVC, router_module.CountVectorizer

    class CountedSVC(real_svc):
        def fit(self, X, y):
            fits.append(X.shape[0])
            return super().fit(X, y)

    class CountedVectorizer(real_counter):
        def fit_transform(self, raw, y=None):
            counts.append(len(raw))
            return super().fit_transform(raw, y)

    monkeypatch.setattr(router_module, "LinearSVC", CountedSVC)
    monkeypatch.setattr(router_module, "CountVectorizer", CountedVectorizer)
    small = Router(REGISTRY, embeddings=False, folds=3)
    n = sum(len(t) for t in REGISTRY.values())
    assert len(fits) == 1 + 3 and fits[0] == n and max(fits[1:]) < n
    assert counts == [n, n]  # words and characters, counted once for all folds
    # The saved router counts only the n-grams its classifier has weights for.
    assert len(small.model.vectorizers[1].vocabulary) == small.model.w.shape[0] - len(
        small.model.vectorizers[0].vocabulary
    )


# --- routing_eval's cross-domain protocols ----------------------------------------


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
