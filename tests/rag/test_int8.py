"""The int8-products graph: derived from the packaged file, cached, and close to it."""

from __future__ import annotations

import numpy as np
import pytest

from ragsite.rag import int8, providers
from ragsite.rag.embeddings import LOCAL_MODEL_NAME, LOCAL_MODEL_SHA256, LocalEmbedder
from ragsite.rag.types import embedder_key

# These tests judge the model itself, so they bypass the session's embedding memo.
pytestmark = pytest.mark.no_embedding_memo

TEXTS = [
    "How does a robot measure the distance to a wall?",
    "A lidar sensor tells the robot how far away the wall is.",
    "Bake the bread for forty minutes until the crust is golden.",
    "`Rc<T>` keeps count of the references to a value on the heap, so it can have "
    "several owners; when the last one is dropped, the value is cleaned up.",
]


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty cache folder and no derivation remembered by this process."""
    folder = tmp_path / "models"
    monkeypatch.setenv("EMBEDDING_MODEL_CACHE", str(folder))
    monkeypatch.setattr(int8, "_derived", {})
    return folder


def test_default_graph_is_int8_and_says_so():
    embedder = LocalEmbedder.default()
    assert embedder.graph == "int8"
    assert embedder.model.startswith(LOCAL_MODEL_NAME)
    assert "int8 products" in embedder.model


def test_int8_vectors_stay_close_to_the_packaged_graph():
    fast = LocalEmbedder.default("int8").embed_sync(TEXTS)
    shipped = LocalEmbedder.default("packaged").embed_sync(TEXTS)
    cosines = np.sum(np.array(fast) * np.array(shipped), axis=1)
    assert cosines.min() > 0.99
    # and the model still tells a paraphrase from an unrelated sentence
    question, paraphrase, unrelated, _ = np.array(fast)
    assert question @ paraphrase > question @ unrelated + 0.3


def test_a_texts_int8_vector_does_not_depend_on_its_batch():
    embedder = LocalEmbedder.default("int8")
    together = embedder.embed_sync(TEXTS)
    alone = [embedder.embed_sync([text])[0] for text in TEXTS]
    assert np.array_equal(np.array(together), np.array(alone))


def test_derivation_is_cached_on_disk_and_rebuilt_when_damaged(fresh_cache):
    source = LocalEmbedder.default("packaged").model_path
    first = int8.derived_model(source, LOCAL_MODEL_SHA256)
    assert first.path is not None
    assert first.path.parent == fresh_cache
    assert first.path.with_suffix(".sha256").read_text() == first.sha256

    int8._derived.clear()  # a new process finds the file
    again = int8.derived_model(source, LOCAL_MODEL_SHA256)
    assert again == first

    int8._derived.clear()
    first.path.write_bytes(b"truncated by a full disk")
    rebuilt = int8.derived_model(source, LOCAL_MODEL_SHA256)
    assert rebuilt.sha256 == first.sha256
    assert first.path.read_bytes() != b"truncated by a full disk"


def test_unwritable_cache_keeps_the_graph_in_memory(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("EMBEDDING_MODEL_CACHE", str(blocker / "models"))
    monkeypatch.setattr(int8, "_derived", {})
    embedder = LocalEmbedder(graph="int8")
    assert embedder.graph == "int8"
    reference = LocalEmbedder.default("int8")
    assert embedder.model == reference.model
    assert np.allclose(embedder.embed_sync(TEXTS[:1]), reference.embed_sync(TEXTS[:1]))


def test_failed_derivation_falls_back_to_the_packaged_graph(fresh_cache, monkeypatch, caplog):
    def broken(source):
        raise RuntimeError("onnxruntime: invalid graph")

    monkeypatch.setattr(int8, "_derive", broken)
    embedder = LocalEmbedder(graph="int8")
    assert embedder.graph == "packaged"
    assert embedder.model == LOCAL_MODEL_NAME
    assert "invalid graph" in caplog.text
    assert len(embedder.embed_sync(TEXTS[:1])[0]) == 384


def test_unknown_graph_is_refused():
    with pytest.raises(ValueError, match="graph must be one of"):
        LocalEmbedder(graph="fp16")


def test_setting_chooses_the_graph_and_ingestion_embeds_with_the_same_one(settings):
    assert providers.get_ingestion_embedder().graph == providers.get_embedder().graph == "int8"
    settings.LOCAL_EMBEDDING_GRAPH = "packaged"
    serving = providers.get_embedder()
    assert serving.graph == "packaged"
    assert serving.model == LOCAL_MODEL_NAME
    # the embedding cache's key: ingestion and serving must agree on it
    assert embedder_key(providers.get_ingestion_embedder()) == embedder_key(serving)
