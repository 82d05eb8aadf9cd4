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
