"""The Qdrant store on real local Qdrant: in memory, on a folder, and across processes."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ragsite.rag import providers, vectorstore
from ragsite.rag.config import get_config
from ragsite.rag.exceptions import (
    STORE_LOCKED_MESSAGE,
    DimensionMismatch,
    VectorStoreError,
)
from ragsite.rag.types import Chunk, VectorStore, chunk_id, sha256_text
from ragsite.rag.vectorstore import QdrantStore, close_client, get_client, memory_client
from tests.conftest import REPO_DIR


def make_chunk(path: str, text: str, position: int = 0) -> Chunk:
    """A chunk as ingestion would build it (stable id from path and content)."""
    digest = sha256_text(text)
    return Chunk(
        id=chunk_id(path, digest),
        text=text,
        body=text,
        title=Path(path).stem.title(),
        heading="",
        path=path,
        url=f"https://book.example/docs/{Path(path).stem}",
        position=position,
        content_hash=digest,
        token_count=len(text.split()),
    )


def unit(*values: float) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


QUERY_TEXT = "lidar point cloud"
QUERY_VECTOR = unit(1, 0, 0, 0)

# Dense order for QUERY_VECTOR: cameras (1.0) > lidar (0.8) > filters (0.6) > legs (0.0).
# Sparse order for QUERY_TEXT: lidar > filters; cameras and legs share no term with it.
CORPUS = {
    "cameras": (
        make_chunk("sensors/cameras.md", "Cameras capture colour images of the scene."),
        unit(1, 0, 0, 0),
    ),
    "lidar": (
        make_chunk(
            "sensors/lidar.md", "Lidar returns a point cloud: each lidar point carries a range."
        ),
        unit(0.8, 0.6, 0, 0),
    ),
    "filters": (
        make_chunk("processing/filters.md", "A point cloud can be downsampled with a voxel grid."),
        unit(0.6, 0.8, 0, 0),
    ),
    "legs": (
        make_chunk("control/legs.md", "Legged robots keep their balance with feedback control."),
        unit(0, 0, 1, 0),
    ),
}


def names(hits) -> list[str]:
    by_id = {chunk.id: name for name, (chunk, _) in CORPUS.items()}
    return [by_id[hit.chunk.id] for hit in hits]


@pytest.fixture
def store() -> QdrantStore:
    store = QdrantStore(memory_client(), "test")
    store.ensure_collection(dimension=4)
    return store


@pytest.fixture
def corpus_store(store) -> QdrantStore:
    chunks, vectors = zip(*CORPUS.values(), strict=True)
    store.upsert(list(chunks), list(vectors))
    return store


def test_store_implements_the_protocol(store):
    assert isinstance(store, VectorStore)
    assert store.mode == "embedded"
    assert store.collection == "test"


def test_dense_search_orders_by_cosine(corpus_store):
    hits = corpus_store.search(query_text=QUERY_TEXT, query_vector=QUERY_VECTOR, k=3, mode="dense")
    assert names(hits) == ["cameras", "lidar", "filters"]
    assert [round(hit.score, 4) for hit in hits] == [1.0, 0.8, 0.6]


def test_sparse_search_ranks_by_matching_terms(corpus_store):
    hits = corpus_store.search(query_text=QUERY_TEXT, query_vector=None, k=4, mode="sparse")
    assert names(hits) == ["lidar", "filters"]  # the others share no word with the query
    assert hits[0].score > hits[1].score > 0
    assert hits[0].score == hits[0].rank_score  # no query vector: the raw sparse score


def test_sparse_search_reports_cosine_when_given_a_vector(corpus_store):
    hits = corpus_store.search(query_text=QUERY_TEXT, query_vector=QUERY_VECTOR, k=4, mode="sparse")
    assert names(hits) == ["lidar", "filters"]
    assert [round(hit.score, 4) for hit in hits] == [0.8, 0.6]
    assert hits[0].rank_score > hits[1].rank_score


def test_hybrid_search_fuses_both_rankings(corpus_store):
    hits = corpus_store.search(query_text=QUERY_TEXT, query_vector=QUERY_VECTOR, k=3)
    # Found by both halves beats first place in one: RRF puts lidar and filters ahead
    # of the dense-only winner.
    assert names(hits) == ["lidar", "filters", "cameras"]
    assert hits[0].rank_score > hits[1].rank_score > hits[2].rank_score
    # The reported score stays the cosine, so a score floor means the same everywhere.
    assert [round(hit.score, 4) for hit in hits] == [0.8, 0.6, 1.0]


def test_hits_carry_the_whole_chunk(corpus_store):
    hit = corpus_store.search(query_text=QUERY_TEXT, query_vector=QUERY_VECTOR, k=1)[0]
    assert hit.chunk == CORPUS["lidar"][0]


def test_hybrid_with_only_stopwords_falls_back_to_dense(corpus_store):
    hits = corpus_store.search(query_text="what is it?", query_vector=QUERY_VECTOR, k=2)
    assert names(hits) == ["cameras", "lidar"]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "sparse"])
def test_search_filters_by_paths(corpus_store, mode):
    hits = corpus_store.search(
        query_text=QUERY_TEXT,
        query_vector=QUERY_VECTOR,
        k=4,
        mode=mode,
        paths=["processing/filters.md", "control/legs.md"],
    )
    assert "filters" in names(hits)
    assert set(names(hits)) <= {"filters", "legs"}


def test_search_with_an_empty_path_list_finds_nothing(corpus_store):
    assert (
        corpus_store.search(query_text=QUERY_TEXT, query_vector=QUERY_VECTOR, k=3, paths=[]) == []
    )


def test_search_of_an_empty_or_missing_collection_is_empty(store):
    missing = QdrantStore(store._client, "never-created")
    for target in (store, missing):
        for mode in ("hybrid", "dense", "sparse"):
            assert (
                target.search(query_text=QUERY_TEXT, query_vector=QUERY_VECTOR, k=3, mode=mode)
                == []
            )
    assert missing.count() == 0
    assert missing.ids_by_path() == {}
    assert missing.get_vectors([CORPUS["lidar"][0].id]) == {}
    missing.delete([CORPUS["lidar"][0].id])  # nothing to delete: no error


def test_upserting_the_same_chunks_twice_does_not_duplicate(corpus_store):
    chunks, vectors = zip(*CORPUS.values(), strict=True)
    corpus_store.upsert(list(chunks), list(vectors))
    assert corpus_store.count() == len(CORPUS)
    hits = corpus_store.search(query_text=QUERY_TEXT, query_vector=QUERY_VECTOR, k=10)
    assert len({hit.chunk.id for hit in hits}) == len(hits)


def test_upsert_batches_large_inputs(store, monkeypatch):
    monkeypatch.setattr(vectorstore, "UPSERT_BATCH_SIZE", 3)
    chunks = [make_chunk("big.md", f"paragraph number {i} about joints", i) for i in range(10)]
    store.upsert(chunks, [unit(1, i, 0, 0) for i in range(10)])
    assert store.count() == 10


def test_upsert_rejects_mismatched_lengths(store):
    with pytest.raises(ValueError, match="2 chunks but 1 vectors"):
        store.upsert([CORPUS["lidar"][0], CORPUS["legs"][0]], [unit(1, 0, 0, 0)])


def test_delete_removes_points_and_ignores_unknown_ids(corpus_store):
    lidar = CORPUS["lidar"][0]
    corpus_store.delete([lidar.id, chunk_id("nowhere.md", "0" * 64)])
    assert corpus_store.count() == len(CORPUS) - 1
    hits = corpus_store.search(query_text=QUERY_TEXT, query_vector=QUERY_VECTOR, k=10)
    assert "lidar" not in names(hits)
    assert "sensors/lidar.md" not in corpus_store.ids_by_path()


def test_ids_by_path_lists_every_page(corpus_store, monkeypatch):
    monkeypatch.setattr(vectorstore, "PAGE_SIZE", 2)  # force several scroll pages
    extra = make_chunk("sensors/lidar.md", "Solid-state lidar has no moving parts.", 1)
    corpus_store.upsert([extra], [unit(0, 0, 0, 1)])
    expected = {chunk.path: set() for chunk, _ in CORPUS.values()}
    for chunk, _ in CORPUS.values():
        expected[chunk.path].add(chunk.id)
    expected["sensors/lidar.md"].add(extra.id)
    assert corpus_store.ids_by_path() == expected
    assert corpus_store.ids_by_path("sensors/lidar.md") == {
        "sensors/lidar.md": expected["sensors/lidar.md"]
    }
    assert corpus_store.ids_by_path("no/such.md") == {}


def test_get_vectors_returns_stored_dense_vectors(corpus_store):
    lidar, vector = CORPUS["lidar"]
    found = corpus_store.get_vectors([lidar.id, chunk_id("nowhere.md", "0" * 64)])
    assert list(found) == [lidar.id]
    assert found[lidar.id] == pytest.approx(vector)


def test_count_and_drop(corpus_store):
    assert corpus_store.count() == len(CORPUS)
    corpus_store.drop()
    assert corpus_store.count() == 0
    corpus_store.drop()  # dropping twice is harmless


def test_ensure_collection_is_idempotent(corpus_store):
    corpus_store.ensure_collection(dimension=4)
    assert corpus_store.count() == len(CORPUS)


def test_ensure_collection_refuses_another_dimension(corpus_store):
    with pytest.raises(DimensionMismatch) as raised:
        corpus_store.ensure_collection(dimension=384)
    message = str(raised.value)
    assert "4-dimensional" in message
    assert "384-dimensional" in message
    assert "--force" in message
    assert raised.value.details == {"collection": "test", "existing": 4, "expected": 384}
    assert corpus_store.count() == len(CORPUS)  # nothing was touched


def test_upsert_without_a_collection_says_what_failed():
    store = QdrantStore(memory_client(), "missing")
    with pytest.raises(VectorStoreError, match="could not store chunks"):
        store.upsert([CORPUS["lidar"][0]], [CORPUS["lidar"][1]])


def test_health_reports_points_and_fails_on_a_closed_client():
    config = get_config()
    store = QdrantStore(get_client(config), "test")
    store.ensure_collection(dimension=4)
    store.upsert([CORPUS["legs"][0]], [CORPUS["legs"][1]])
    assert store.health() == {"status": "ok", "mode": "embedded", "points": 1}
    close_client()
    with pytest.raises(VectorStoreError):
        store.health()


def test_data_persists_after_close_and_reopen():
    config = get_config()
    store = QdrantStore(get_client(config), "test")
    store.ensure_collection(dimension=4)
    chunks, vectors = zip(*CORPUS.values(), strict=True)
    store.upsert(list(chunks), list(vectors))
    close_client()

    reopened = QdrantStore(get_client(config), "test")
    assert reopened.count() == len(CORPUS)
    hits = reopened.search(query_text=QUERY_TEXT, query_vector=QUERY_VECTOR, k=3)
    assert names(hits) == ["lidar", "filters", "cameras"]


def test_get_client_is_shared_within_the_process():
    config = get_config()
    assert get_client(config) is get_client(config)


LOCK_PROBE = """
import django
django.setup()
from ragsite.rag import providers
from ragsite.rag.exceptions import VectorStoreLocked
try:
    print(providers.get_store().count())
except VectorStoreLocked as exc:
    print(exc)
    raise SystemExit(3)
"""


def _probe_from_another_process(data_dir: Path, store_dir: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "RAGSITE_TEST_SUBPROCESS": "1",
        "RAGSITE_DATA_DIR": str(data_dir),
        "QDRANT_PATH": str(store_dir),
        "QDRANT_COLLECTION": "test",
    }
    return subprocess.run(
        [sys.executable, "-c", LOCK_PROBE],
        cwd=REPO_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_second_process_gets_a_clear_lock_error(settings, tmp_path):
    store_dir = Path(settings.QDRANT_PATH)
    store = providers.get_store()  # this process now holds the folder
    store.ensure_collection(dimension=4)
    store.upsert([CORPUS["legs"][0]], [CORPUS["legs"][1]])

    locked = _probe_from_another_process(tmp_path / "data", store_dir)
    assert locked.returncode == 3, locked.stderr
    assert locked.stdout.strip() == STORE_LOCKED_MESSAGE.format(path=store_dir)
    assert "Traceback" not in locked.stderr
    assert store.count() == 1  # the holder is undisturbed by the refused opener

    # What the message asks for: once the holder lets go, the folder opens again
    # (a second opener in this process would be refused just the same).
    providers.reset()
    assert QdrantStore(get_client(get_config()), "test").count() == 1


def test_providers_store_uses_the_test_settings(settings):
    store = providers.get_store()
    assert store is providers.get_store()
    assert store.mode == "embedded"
    assert store.collection == "test"
    store.ensure_collection(dimension=4)
    store.upsert([CORPUS["lidar"][0]], [CORPUS["lidar"][1]])
    assert store.health() == {"status": "ok", "mode": "embedded", "points": 1}
    assert (Path(settings.QDRANT_PATH) / "collection" / "test").is_dir()
    other = providers.get_store("eval-tmp")
    assert other.collection == "eval-tmp"
    assert other.count() == 0


def test_searches_keep_working_while_another_thread_ingests():
    store = QdrantStore(get_client(get_config()), "test")
    store.ensure_collection(dimension=4)
    chunks, vectors = zip(*CORPUS.values(), strict=True)
    store.upsert(list(chunks), list(vectors))
    errors: list[BaseException] = []
    results: list[list[str]] = []
    done = threading.Event()

    def searcher():
        while not done.is_set():
            try:
                hits = store.search(query_text=QUERY_TEXT, query_vector=QUERY_VECTOR, k=3)
                results.append(names(hits[:1]))
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for batch in range(10):
            new = [make_chunk(f"bulk/{batch}.md", f"servo motor torque {i}", i) for i in range(30)]
            store.upsert(new, [unit(0, 0, 1, 0.1 * i) for i in range(30)])
            store.delete([chunk.id for chunk in new[:10]])
    finally:
        done.set()
        for thread in threads:
            thread.join()
    assert errors == []
    assert results
    assert all(result == ["lidar"] for result in results)
    assert store.count() == len(CORPUS) + 10 * 20


def test_real_embedder_finds_the_passage_that_answers():
    from ragsite.rag.embeddings import LocalEmbedder

    embedder = LocalEmbedder.default()
    texts = [
        "Lidar measures distance by timing laser pulses that bounce back from surfaces.",
        "An inertial measurement unit combines accelerometers and gyroscopes.",
        "Zero-moment point control keeps a walking humanoid from tipping over.",
        "Ownership in Rust means each value has a single owner that frees it.",
    ]
    chunks = [make_chunk(f"book/{i}.md", text) for i, text in enumerate(texts)]
    store = QdrantStore(memory_client(), "real")
    store.ensure_collection(dimension=embedder.dimension)
    store.upsert(chunks, embedder.embed_sync(texts))

    question = "How does a laser range sensor work out how far away things are?"
    query_vector = embedder.embed_sync([question])[0]
    for mode in ("hybrid", "dense"):
        hits = store.search(query_text=question, query_vector=query_vector, k=4, mode=mode)
        assert hits[0].chunk.path == "book/0.md", mode
        assert hits[0].score > hits[-1].score
    keyword = store.search(query_text="gyroscopes", query_vector=None, k=4, mode="sparse")
    assert [hit.chunk.path for hit in keyword] == ["book/1.md"]
