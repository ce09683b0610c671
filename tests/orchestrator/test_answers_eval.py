"""`manage.py answers_eval`: figures on the dev questions and plain-words errors."""

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

DEV = Path(__file__).resolve().parents[2] / "orchestrator" / "seed" / "dev" / "answers.jsonl"
HOLDOUT = DEV.with_name("answers_holdout.jsonl")


def evaluate(*args):
    from io import StringIO

    out = StringIO()
    call_command("answers_eval", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_the_dev_set_is_large_enough_and_meets_the_reply_length_target():
    result = evaluate("--cases", str(DEV))
    assert result["cases"] >= 100
    # The figures docs/offline-model.md reports, with room for a core's rounding noise.
    assert result["top1_article"] >= 0.9 and result["top1_section"] >= 0.75
    assert result["median_reply_words"] <= 120
    assert len(result["misses"]) == round(result["cases"] * (1 - result["top1_section"]))


def test_the_held_out_set_is_labelled_and_shares_no_question_with_the_dev_set():
    from orchestrator.answers_eval import read_cases, seed_knowledge

    base = seed_knowledge()
    held_out = read_cases(HOLDOUT, base)  # every article and section label exists
    dev = {c["question"].casefold() for c in read_cases(DEV, base)}
    assert len(held_out) >= 40
    assert not [c["question"] for c in held_out if c["question"].casefold() in dev]
    # It covers most articles, so its figure is not one article's.
    assert len({c["article"] for c in held_out}) >= 20


def test_database_articles_give_the_seed_figures(team):
    assert (
        evaluate("--cases", str(DEV), "--from-db")["top1_section"]
        == (evaluate("--cases", str(DEV))["top1_section"])
    )


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("not json", "line 1: not valid JSON"),
        ('{"question": "q", "article": "Refund policy"}', "expected an object with text fields"),
        (
            '{"question": "q", "article": "No such", "section": "x"}',
            "no published article is titled 'No such'",
        ),
        (
            '{"question": "q", "article": "Refund policy", "section": "Nope"}',
            "'Refund policy' has no section 'Nope'",
        ),
    ],
)
def test_bad_cases_are_refused_in_plain_words(tmp_path, line, error):
    cases = tmp_path / "cases.jsonl"
    cases.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(CommandError, match=error):
        call_command("answers_eval", "--cases", str(cases))


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("answers_eval", "--cases", str(tmp_path / "absent.jsonl"))
