"""One MiniLM per process (Chroma's rebuilds included) and the single-text memory of its vectors."""

from __future__ import annotations

import numpy as np

from store.embeddings import RECENT_TEXTS, ChromaEmbedding, MiniLM, shared_model
from store.knowledge import shared_embedder


def test_chroma_rebuilds_the_function_on_the_loaded_model():
    # Chroma calls build_from_config on every upsert; each call used to read the 90 MB checkpoint again
    model = shared_model()
    rebuilt = ChromaEmbedding.build_from_config({"model": model.name})
    assert rebuilt.embedder is model
    assert shared_embedder() is model


def test_a_remembered_text_gives_the_same_vector_and_a_copy():
    model = shared_model()
    text = "checkout: HTTP 503 from payments after deploy chg-1 (remembered vector)"
    fresh = MiniLM(model.model_dir).embed([text])  # another instance: nothing remembered
    first = model.embed([text])
    second = model.embed([text])
    np.testing.assert_allclose(first, fresh, atol=1e-6)
    np.testing.assert_array_equal(first, second)
    second[0, 0] = 42.0  # a caller writing into its result does not change what is remembered
    assert model.embed([text])[0, 0] == first[0, 0]
    batch = model.embed([text, "something else"])  # batches are computed, and agree
    np.testing.assert_allclose(batch[0], first[0], atol=1e-5)


def test_the_memory_is_bounded():
    model = MiniLM(shared_model().model_dir)
    for i in range(RECENT_TEXTS + 5):
        model.embed([f"text {i}"])
    assert len(model._recent) == RECENT_TEXTS
    assert "text 0" not in model._recent and f"text {RECENT_TEXTS + 4}" in model._recent


def test_the_table_gelu_is_the_exact_erf_gelu():
    # GELU reads the normal CDF from a table (linear steps of 1e-3); it must stay BERT's exact-erf GELU.
    import math

    from store.embeddings import gelu

    x = np.concatenate([np.linspace(-12.0, 12.0, 24_001), [-1e4, -8.0, -7.9995, 0.0, 7.9995, 8.0, 1e4]])
    exact = np.array([v * 0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x])
    scale = np.maximum(1.0, np.abs(x))
    assert (np.abs(gelu(x) - exact) / scale).max() < 1e-7  # float64: the table's own error (< 3e-8)
    got32 = gelu(x.astype(np.float32))
    assert got32.dtype == np.float32
    assert (np.abs(got32 - exact) / scale).max() < 1e-6  # float32: its rounding


def test_onnxruntime_runs_the_layers_and_agrees_with_numpy():
    import pytest

    model = shared_model()
    assert model.backend == "onnxruntime"  # installed with chromadb: the default takes it
    plain = MiniLM(model.model_dir, backend="numpy", max_tokens=model.max_tokens)
    assert plain.backend == "numpy"
    texts = ["The weather is lovely today.", "", "checkout: HTTP 503 from payments after deploy chg-1 " * 6,
             "HikariPool-1 - Connection is not available, request timed out after 30000ms"]
    batched = model.embed(texts)  # one padded batch through the graph
    np.testing.assert_allclose(batched, plain.embed(texts), atol=1e-5)
    np.testing.assert_allclose(np.stack([model.embed([t])[0] for t in texts]), batched, atol=1e-5)
    with pytest.raises(ValueError, match="float32"):
        MiniLM(model.model_dir, backend="onnxruntime", dtype=np.float64)
    with pytest.raises(ValueError, match="unknown"):
        MiniLM(model.model_dir, backend="torch")
