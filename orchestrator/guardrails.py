"""The guardrails: an offline classifier in front of every turn, and what replies must not
contain. docs/guardrails.md explains them and gives their figures.

Input: `InputClassifier` reads a message the way orchestrator.domain.guardrails shows it
(its disguise taken off, and what hides inside it decoded) and scores each reading with a
logistic regression over
  * the all-MiniLM-L6-v2 sentence embedding the router already loads (orchestrator/encoder.py;
    nothing is downloaded; without the weights the classifier works on the rest),
  * character 2-5-grams and word 1-2-grams (TF-IDF),
  * the pairs of concepts the message mentions, in any of the languages of
    orchestrator.domain.guardrail_words (IGNORE+INSTRUCTIONS, OTHER_PEOPLE+PERSONAL_DATA ...).
It is trained on orchestrator/seed/guardrails/dev.jsonl and on the messages staff marked as
false positives (as ordinary). The threshold is chosen by 5-fold cross-validation on those
rows only: the highest score at which no more than 1 % of the ordinary messages is blocked.
The test split is never read here (only by `manage.py guardrails_eval --split test`).

Output: `screen_rules()` gathers what a reply must not contain: the secret values
(`secret_values()`: settings and environment, plus whatever other code registers with
`register_secret_values`), the agents' instructions, and e-mail addresses other than those
the conversation and the knowledge base already show.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from .domain.guardrail_words import concepts, matching_rule
from .domain.guardrails import EMAIL, GuardrailName, ScreenRules, Verdict, canonical, views
from .encoder import MiniLMEncoder, load_encoder

logger = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "seed" / "guardrails"
SPLITS = ("dev", "test")
ATTACK, ORDINARY = "attack", "ordinary"
FALSE_POSITIVE = "false_positive"  # the kind of a message staff marked: ordinary
# Bump when a change here makes classifiers saved by older code wrong (see router_store).
CLASSIFIER_FORMAT = 2
TARGET_ORDINARY_BLOCKED = 0.01


def classifier_version() -> str:
    """Names saved classifiers: the format, and a hash of the lexicon and the code that reads
    messages back (a change to either makes saved ones stale, so they are trained again)."""
    from .domain import guardrail_words
    from .domain import guardrails as domain_guardrails

    digest = hashlib.blake2b(digest_size=4)
    for module in (guardrail_words, domain_guardrails):
        digest.update(Path(module.__file__).read_bytes())
    return f"g{CLASSIFIER_FORMAT}-{digest.hexdigest()}"


FOLDS = 5
C = 10.0


# --- The labelled rows -----------------------------------------------------------------


def load_split(split: str) -> list[dict[str, str]]:
    """The rows of one split of orchestrator/seed/guardrails (see its README)."""
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}: use one of {', '.join(SPLITS)}.")
    path = DATA_DIR / f"{split}.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    for row in rows:
        if row.get("label") not in (ATTACK, ORDINARY) or not row.get("text"):
            raise ValueError(f"{path.name}: a row without text or label: {row!r}")
    return rows


_ordinary_sources: list[Callable[[], Iterable[str]]] = []


def register_ordinary_examples(source: Callable[[], Iterable[str]]) -> None:
    """Add a source of ordinary messages to train on (the chat app registers the
    messages staff marked as false positives)."""
    if source not in _ordinary_sources:
        _ordinary_sources.append(source)


@functools.lru_cache(maxsize=1)
def dev_corpus() -> tuple[tuple[str, tuple[str, ...]], ...]:
    corpus: dict[str, list[str]] = {}
    for row in load_split("dev"):
        corpus.setdefault(f"{row['label']}:{row['kind']}", []).append(row["text"])
    return tuple((key, tuple(texts)) for key, texts in corpus.items())


def training_corpus() -> dict[str, list[str]]:
    """Training texts by "label:kind": the dev split and the registered ordinary messages."""
    corpus = {key: list(texts) for key, texts in dev_corpus()}
    extra = sorted({t for source in _ordinary_sources for t in source() if t and t.strip()})
    if extra:
        corpus[f"{ORDINARY}:{FALSE_POSITIVE}"] = extra
    return corpus


# --- The classifier --------------------------------------------------------------------


def concept_pairs(text: str) -> str:
    """The concepts a text mentions and every pair of them, as tokens."""
    found = sorted(set(concepts(text).split()))
    pairs = [f"{a}+{b}" for i, a in enumerate(found) for b in found[i + 1 :]]
    return " ".join([*found, *pairs])


class _Model:
    """The features and one fitted logistic regression (the classifier's, one per fold)."""

    def __init__(self, texts: list[str], targets: np.ndarray, emb: np.ndarray | None) -> None:
        self.chars = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2
        )
        self.words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        self.pairs = TfidfVectorizer(
            token_pattern=r"\S+", lowercase=False, preprocessor=concept_pairs, sublinear_tf=True
        )
        parts = [v.fit_transform(texts) for v in (self.chars, self.words, self.pairs)]
        self.clf = LogisticRegression(C=C, max_iter=5000).fit(self._stack(parts, emb), targets)

    @staticmethod
    def _stack(parts: list[Any], emb: np.ndarray | None):
        if emb is not None:
            parts = [*parts, csr_matrix(emb)]
        return hstack(parts).tocsr()

    def features(self, texts: list[str], emb: np.ndarray | None):
        parts = [v.transform(texts) for v in (self.chars, self.words, self.pairs)]
        return self._stack(parts, emb)

    def proba(self, texts: list[str], emb: np.ndarray | None) -> np.ndarray:
        return self.clf.predict_proba(self.features(texts, emb))


def choose_threshold(ordinary_scores: np.ndarray, target: float) -> float:
    """The score above which a message is blocked: as low as it can be while at most
    `target` of these ordinary messages score above it."""
    ordered = np.sort(np.asarray(ordinary_scores, dtype=float))[::-1]
    if not len(ordered):
        return 0.5
    allowed = int(np.floor(target * len(ordered)))
    return float(ordered[min(allowed, len(ordered) - 1)])


class InputClassifier:
    """Jailbreaks, prompt injection and requests for instructions, secrets or other
    people's data, told from ordinary support messages.

    `corpus` maps "label:kind" to texts (training_corpus()). Training fits FOLDS + 2
    models (the folds, the classifier, and one more that names an attack's kind), a few
    seconds: call it from a worker thread (guardrail_store does). `check` takes about
    1 ms once the message's embedding is known (the router computed it), about 10 ms
    more when it is not, and one embedding more for each hidden reading.
    """

    def __getstate__(self) -> dict:
        """Pickled without the encoder (loaded once per process)."""
        state = self.__dict__.copy()
        state["encoder"] = None
        state["_had_encoder"] = self.encoder is not None
        return state

    def __setstate__(self, state: dict) -> None:
        had = state.pop("_had_encoder", False)
        self.__dict__.update(state)
        if had:
            self.encoder = load_encoder()
            if self.encoder is None:
                raise RuntimeError(
                    "this classifier needs the MiniLM weights, which are not installed"
                )

    def __init__(
        self,
        corpus: Mapping[str, Iterable[str]],
        *,
        embeddings: bool | None = None,
        folds: int = FOLDS,
        seed: int = 0,
        target: float = TARGET_ORDINARY_BLOCKED,
    ) -> None:
        texts, labels, kinds = [], [], []
        for key, items in corpus.items():
            label, _, kind = key.partition(":")
            for text in items:
                texts.append(text)
                labels.append(label == ATTACK)
                kinds.append(kind or label)
        if not any(labels) or all(labels):
            raise ValueError("The guardrail needs attacks and ordinary messages to learn from.")
        self.encoder: MiniLMEncoder | None = load_encoder() if embeddings is not False else None
        self.mode = "minilm" if self.encoder is not None else "tfidf"
        self.target, self.seed = target, seed
        self._views = [views(t) for t in texts]
        y, kinds_arr = np.asarray(labels), np.asarray(kinds, dtype=object)
        rows = [i for i, vs in enumerate(self._views) for _ in vs]
        flat = [v for vs in self._views for v in vs]
        emb = self.encoder.encode(flat) if self.encoder is not None else None
        self.model = _Model(flat, y[rows], emb)
        attack_rows = [j for j, i in enumerate(rows) if y[i]]
        self.kinds = _Model(
            [flat[j] for j in attack_rows],
            kinds_arr[[rows[j] for j in attack_rows]].astype(str),
            emb[attack_rows] if emb is not None else None,
        )
        # The rules never block a message labelled ordinary (a false positive staff marked).
        self._ordinary = frozenset(
            canonical(t) for t, is_attack in zip(texts, y, strict=True) if not is_attack
        )
        oof = self._out_of_fold(texts, y, kinds_arr, folds)
        self.oof_scores = dict(zip(texts, oof.tolist(), strict=True))  # for guardrails_eval
        ruled = np.array(
            [self._rule(self._views[i], labelled=False) is not None for i in range(len(texts))]
        )
        self.oof_ruled = {t for t, hit in zip(texts, ruled, strict=True) if hit}
        # A rule's hit on an ordinary row counts against the 1 % like a high score.
        self.threshold = choose_threshold(np.where(ruled, np.inf, oof)[~y], target)
        blocked = (oof > self.threshold) | ruled
        self.cv = {
            "folds": folds,
            "attacks_blocked": float(blocked[y].mean()),
            "ordinary_blocked": float(blocked[~y].mean()),
            "attacks": int(y.sum()),
            "ordinary": int((~y).sum()),
        }

    def _out_of_fold(self, texts, y: np.ndarray, kinds: np.ndarray, folds: int) -> np.ndarray:
        """Each row's score from a model that did not see it (stratified by label and kind)."""
        oof = np.zeros(len(texts))
        strata = np.array([f"{a}:{k}" for a, k in zip(y, kinds, strict=True)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # strata smaller than the number of folds
            split = StratifiedKFold(folds, shuffle=True, random_state=self.seed)
            splits = list(split.split(np.zeros(len(texts)), strata))
        for train, test in splits:
            rows = [i for i in train for _ in self._views[i]]
            flat = [v for i in train for v in self._views[i]]
            model = _Model(flat, y[rows], self._embed(flat))
            oof[test] = [self._score_with(model, self._views[i])[0] for i in test]
        return oof

    def _embed(self, texts: list[str], *, live: bool = False) -> np.ndarray | None:
        if self.encoder is None:
            return None
        if live:
            return np.stack([self.encoder.encode_one(t) for t in texts])
        return self.encoder.encode(texts)

    def _score_with(
        self, model: _Model, readings: list[str], *, live: bool = False
    ) -> tuple[float, int]:
        scores = model.proba(readings, self._embed(readings, live=live))[:, 1]
        best = int(np.argmax(scores))
        return float(scores[best]), best

    def _rule(self, readings: list[str], *, labelled: bool = True) -> tuple[str, str] | None:
        """The high-precision rule a reading matches (orchestrator.domain.guardrail_words),
        unless the message is one labelled ordinary (`labelled`: the live check)."""
        if labelled and readings and readings[0] in self._ordinary:
            return None
        for reading in readings:
            hit = matching_rule(reading)
            if hit is not None:
                return hit
        return None

    def oof_blocked(self, text: str) -> bool:
        """Whether the cross-validation blocked this training row (score or rule)."""
        return self.oof_scores[text] > self.threshold or text in self.oof_ruled

    def check(self, text: str) -> Verdict:
        """Whether to block `text`, with the score, the attack's kind and the time taken.
        A rule blocks whatever the score; its name is the verdict's detail."""
        started = time.perf_counter()
        readings = views(text or "")
        score, best = self._score_with(self.model, readings, live=True)
        blocked = score > self.threshold
        kind = detail = ""
        if not blocked and (rule := self._rule(readings)) is not None:
            blocked, (detail, kind) = True, rule
            detail = f"rule: {detail}"
        elif blocked:
            reading = readings[best : best + 1]
            probs = self.kinds.proba(reading, self._embed(reading, live=True))[0]
            kind = str(self.kinds.clf.classes_[int(np.argmax(probs))])
        ms = (time.perf_counter() - started) * 1000
        return Verdict(blocked, GuardrailName.INPUT, kind, score, ms, detail)


def train(corpus: Mapping[str, list[str]], fallback: Iterable[str] = ()) -> InputClassifier:
    """What the store calls (its corpus, and the false positives as extra ordinary rows)."""
    corpus = dict(corpus)
    extra = [t for t in fallback if t not in corpus.get(f"{ORDINARY}:{FALSE_POSITIVE}", ())]
    if extra:
        corpus[f"{ORDINARY}:{FALSE_POSITIVE}"] = [
            *corpus.get(f"{ORDINARY}:{FALSE_POSITIVE}", []),
            *extra,
        ]
    return InputClassifier(corpus)


# --- What replies must not contain -----------------------------------------------------

SECRET_NAME_PARTS = (
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "TOKEN",
    "API_KEY",
    "APIKEY",
    "PRIVATE_KEY",
    "CREDENTIAL",
)
_secret_sources: list[Callable[[], Iterable[str]]] = []


def register_secret_values(source: Callable[[], Iterable[str]]) -> None:
    """Add a source of values no reply may contain (stored secrets of other apps: the
    chat app registers the sites' identity secrets)."""
    if source not in _secret_sources:
        _secret_sources.append(source)


def _secret_named(name: str) -> bool:
    upper = name.upper()
    return any(part in upper for part in SECRET_NAME_PARTS)


def settings_secrets() -> list[str]:
    """SECRET_KEY, every setting and environment variable whose name says it is a secret
    (…_API_KEY, …_TOKEN, …PASSWORD …), and the databases' passwords."""
    from django.conf import settings

    values = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ())]
    for name in dir(settings):
        if name.isupper() and _secret_named(name):
            value = getattr(settings, name, "")
            if isinstance(value, str):
                values.append(value)
    for database in settings.DATABASES.values():
        values.append(str(database.get("PASSWORD") or ""))
    values += [v for k, v in os.environ.items() if _secret_named(k)]
    return values


def secret_values() -> list[str]:
    """Every value a reply must never contain (long enough to be told apart from words)."""
    values = list(settings_secrets())
    for source in _secret_sources:
        try:
            values.extend(str(v) for v in source() if v)
        except Exception as exc:  # one broken source must not open the others
            logger.error("A secret source failed: %s", exc)
    return sorted({v for v in values if v and len(v) >= 8})


def screen_rules(
    *, instructions: Iterable[str], shown: Iterable[str], emails: Iterable[str] = ()
) -> ScreenRules:
    """The output screen for one turn: secrets, the agents' `instructions`, and e-mail
    addresses beyond those in `shown` (texts the user already saw or wrote: the
    conversation, the page, the knowledge base) and `emails`."""
    allowed = {e.lower() for text in shown for e in EMAIL.findall(text or "")}
    allowed |= {e.lower() for e in emails if e}
    return ScreenRules(secrets=secret_values(), instructions=instructions, allowed_emails=allowed)
