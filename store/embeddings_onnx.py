"""MiniLM's encoder layers run by onnxruntime: the same forward pass as :mod:`store.embeddings`, a third less CPU.

onnxruntime comes with chromadb; the ``onnx`` package and torch, which usually export a model, do not.
So the graph is written here from the checkpoint's own weights: six post-norm BERT layers (MatMul + Add,
12-head attention with an additive mask, LayerNormalization, the exact erf GELU), serialised to the ONNX
protobuf by a small writer of the wire format (field numbers from onnx/onnx.proto; opset 17, the first
with LayerNormalization). onnxruntime fuses the pieces (attention, bias + GELU, skip + layer norm) itself.

The embedding lookup before the layers and the mean pooling after them stay in numpy
(:class:`store.embeddings.MiniLM`). Optional: without onnxruntime, or when it refuses the graph, MiniLM
runs the layers in numpy (:func:`encoder_or_none`).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: ONNX opset of the graph: LayerNormalization needs 17.
OPSET = 17
#: ONNX IR version written (8 goes with opset 17).
IR_VERSION = 8
_FLOAT, _INT64 = 1, 7  # TensorProto.DataType


# -- the protobuf wire format (https://protobuf.dev/programming-guides/encoding/) -------------------------
def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64 values are ten bytes, two's complement
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _int(field: int, n: int) -> bytes:
    return _varint(field << 3) + _varint(n)


def _bytes(field: int, data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return _varint(field << 3 | 2) + _varint(len(raw)) + raw


def _float(field: int, x: float) -> bytes:
    return _varint(field << 3 | 5) + struct.pack("<f", x)


# -- ONNX messages (onnx.proto: TensorProto, AttributeProto, NodeProto, ValueInfoProto, GraphProto, ModelProto)
def _tensor(name: str, arr: np.ndarray) -> bytes:
    arr = np.ascontiguousarray(arr)
    kind = {np.dtype(np.float32): _FLOAT, np.dtype(np.int64): _INT64}[arr.dtype]
    return b"".join(_int(1, d) for d in arr.shape) + _int(2, kind) + _bytes(8, name) + _bytes(9, arr.tobytes())


def _attr(name: str, value: int | float | list[int]) -> bytes:
    if isinstance(value, list):  # INTS = 7
        return _bytes(1, name) + b"".join(_int(8, v) for v in value) + _int(20, 7)
    if isinstance(value, float):  # FLOAT = 1
        return _bytes(1, name) + _float(2, value) + _int(20, 1)
    return _bytes(1, name) + _int(3, value) + _int(20, 2)  # INT = 2


def _node(op: str, inputs: Iterable[str], outputs: Iterable[str], **attrs: int | float | list[int]) -> bytes:
    return (b"".join(_bytes(1, i) for i in inputs) + b"".join(_bytes(2, o) for o in outputs) + _bytes(4, op)
            + b"".join(_bytes(5, _attr(k, v)) for k, v in attrs.items()))


def _value_info(name: str, dims: Iterable[int | str]) -> bytes:
    shape = b"".join(_bytes(1, _bytes(2, d) if isinstance(d, str) else _int(1, d)) for d in dims)
    return _bytes(1, name) + _bytes(2, _bytes(1, _int(1, _FLOAT) + _bytes(2, shape)))


def encoder_model(w: Mapping[str, np.ndarray], *, layers: int, heads: int, eps: float) -> bytes:
    """The encoder layers as a serialised ONNX model.

    Args:
        w: the checkpoint's float32 tensors by name, as stored (dense weights (out, in)).

    The model's inputs: ``h`` (batch, tokens, 384), the embeddings after their LayerNorm; ``bias``
    (batch, 1, 1, tokens), 0 for real tokens and a large negative number for padding. Output: ``out``,
    the last layer's hidden states (batch, tokens, 384).
    """
    nodes: list[bytes] = []
    inits: list[bytes] = []

    def const(name: str, arr: np.ndarray) -> str:
        inits.append(_tensor(name, arr))
        return name

    d = int(w["embeddings.LayerNorm.weight"].shape[0])
    hd = d // heads
    const("heads_shape", np.array([0, 0, heads, hd], np.int64))  # 0: keep that dimension
    const("model_shape", np.array([0, 0, d], np.int64))
    const("scale", np.array(1.0 / np.sqrt(hd), np.float32))
    const("sqrt2", np.array(np.sqrt(2.0), np.float32))
    const("one", np.array(1.0, np.float32))
    const("half", np.array(0.5, np.float32))
    h = "h"
    for i in range(layers):
        p = f"encoder.layer.{i}."

        def dense(x: str, name: str, out: str, p: str = p) -> str:
            weight = const(p + name + ".weight", w[p + name + ".weight"].T)  # MatMul wants (in, out)
            nodes.append(_node("MatMul", [x, weight], [out + ".mm"]))
            nodes.append(_node("Add", [out + ".mm", const(p + name + ".bias", w[p + name + ".bias"])], [out]))
            return out

        for name, perm in (("query", [0, 2, 1, 3]), ("key", [0, 2, 3, 1]), ("value", [0, 2, 1, 3])):
            dense(h, "attention.self." + name, p + name)
            nodes.append(_node("Reshape", [p + name, "heads_shape"], [p + name + ".split"]))
            nodes.append(_node("Transpose", [p + name + ".split"], [p + name + ".t"], perm=perm))
        nodes.extend([
            _node("MatMul", [p + "query.t", p + "key.t"], [p + "scores"]),
            _node("Mul", [p + "scores", "scale"], [p + "scaled"]),
            _node("Add", [p + "scaled", "bias"], [p + "masked"]),
            _node("Softmax", [p + "masked"], [p + "probs"], axis=-1),
            _node("MatMul", [p + "probs", p + "value.t"], [p + "ctx.t"]),
            _node("Transpose", [p + "ctx.t"], [p + "ctx.split"], perm=[0, 2, 1, 3]),
            _node("Reshape", [p + "ctx.split", "model_shape"], [p + "ctx"]),
        ])
        dense(p + "ctx", "attention.output.dense", p + "attn")
        nodes.append(_node("Add", [p + "attn", h], [p + "attn.res"]))
        nodes.append(_node("LayerNormalization", [
            p + "attn.res", const(p + "ln1.g", w[p + "attention.output.LayerNorm.weight"]),
            const(p + "ln1.b", w[p + "attention.output.LayerNorm.bias"])], [p + "a"], axis=-1, epsilon=float(eps)))
        dense(p + "a", "intermediate.dense", p + "ff")
        nodes.extend([  # x * 0.5 * (1 + erf(x / sqrt 2)): BERT's exact GELU
            _node("Div", [p + "ff", "sqrt2"], [p + "ff.s"]),
            _node("Erf", [p + "ff.s"], [p + "ff.erf"]),
            _node("Add", [p + "ff.erf", "one"], [p + "ff.1"]),
            _node("Mul", [p + "ff", p + "ff.1"], [p + "ff.x"]),
            _node("Mul", [p + "ff.x", "half"], [p + "gelu"]),
        ])
        dense(p + "gelu", "output.dense", p + "ffo")
        nodes.append(_node("Add", [p + "ffo", p + "a"], [p + "ffo.res"]))
        out = "out" if i == layers - 1 else p + "h"
        nodes.append(_node("LayerNormalization", [
            p + "ffo.res", const(p + "ln2.g", w[p + "output.LayerNorm.weight"]),
            const(p + "ln2.b", w[p + "output.LayerNorm.bias"])], [out], axis=-1, epsilon=float(eps)))
        h = out
    parts = [*(_bytes(1, n) for n in nodes), _bytes(2, "minilm_encoder"),
             _bytes(11, _value_info("h", ["batch", "tokens", d])),
             _bytes(11, _value_info("bias", ["batch", 1, 1, "tokens"])),
             _bytes(12, _value_info("out", ["batch", "tokens", d]))]
    size = sum(map(len, parts)) + sum(len(t) + len(_varint(len(t))) + 1 for t in inits)
    # One join of the ~90 MB of weights (the graph's fields may come in any order), not a copy per level.
    return b"".join([_int(1, IR_VERSION), _varint(7 << 3 | 2), _varint(size), *parts,
                     *(b for t in inits for b in (_varint(5 << 3 | 2), _varint(len(t)), t)),
                     _bytes(8, _bytes(1, "") + _int(2, OPSET))])


class OnnxEncoder:
    """The encoder layers (a model from :func:`encoder_model`) in an onnxruntime session, on the calling
    thread: one intra-op thread, no spinning (on a shared machine more threads only fight the worker
    threads, as OpenBLAS's did).

    Raises:
        Exception: whatever onnxruntime raises when it refuses the graph (see :func:`encoder_or_none`).
    """

    def __init__(self, model: bytes) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # warnings about initializers left unused after fusion are noise
        self.session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])

    def __call__(self, h: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """The last layer's hidden states for ``h`` (batch, tokens, 384) and the mask ``bias`` (batch, 1, 1, tokens)."""
        out: Any = self.session.run(["out"], {"h": h, "bias": bias})[0]
        return np.asarray(out)


def available() -> bool:
    """Whether onnxruntime can be imported."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def encoder_or_none(model: bytes) -> OnnxEncoder | None:
    """An :class:`OnnxEncoder`, or None when onnxruntime refuses the graph (said in the log)."""
    try:
        return OnnxEncoder(model)
    except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
        log.warning("onnxruntime refused the MiniLM encoder graph (%s: %s); embedding with numpy",
                    type(exc).__name__, str(exc)[:200])
        return None
