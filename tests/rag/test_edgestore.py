"""The qdrant-edge store: the same behaviour as the qdrant-client store, on both engines.

The behavioural cases of test_vectorstore.py are repeated here for each embedded
engine ("client" = qdrant-client local mode, "edge" = qdrant-edge), so the two stay
interchangeable behind the `VectorStore` Protocol; the edge-only cases (its folder,
its lock, persistence, the provider switch, optimize) follow.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragsite.rag import edgestore, providers, vectorstore
from ragsite.rag.config import get_config
from ragsite.rag.edgestore import EdgeEngine, EdgeStore, close_engine, get_engine
from ragsite.rag.exceptions import (
    STORE_LOCKED_MESSAGE,
    ConfigurationError,
    DimensionMismatch,
    VectorStoreError,
)
from ragsite.rag.types import VectorStore, chunk_id
from ragsite.rag.vectorstore import QdrantStore, memory_client
from tests.conftest import REPO_DIR, TEXTBOOK_DIR
from tests.rag.test_vectorstore import (
    CORPUS,
    LOCK_PROBE,
    QUERY_TEXT,
    QUERY_VECTOR,
    make_chunk,
    names,
    unit,
)

ENGINES = ["client", "edge"]
MODULES = {"client": vectorstore, "edge": edgestore}


@pytest.fixture
def edge_engine(tmp_path) -> Iterator[EdgeEngine]:
    """A private edge engine in a temp folder, closed (locks released) afterwards."""
    engine = EdgeEngine(tmp_path / "edge")
    yield engine
    engine.close()


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    return request.param


@pytest.fixture
def new_store(engine, edge_engine):
    """Build a store on the engine under test (collection not created yet)."""

    def build(collection: str = "test") -> VectorStore:
        if engine == "client":
            return QdrantStore(memory_client(), collection)
        return EdgeStore(edge_engine, collection)

    return build


@pytest.fixture
def store(new_store) -> VectorStore:
    store = new_store()
    store.ensure_collection(dimension=4)
    return store


@pytest.fixture
def corpus_store(store) -> VectorStore:
    chunks, vectors = zip(*CORPUS.values(), strict=True)
    store.upsert(list(chunks), list(vectors))
    return store


# --- the same behaviour on both engines ------------------------------------------------------


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
    assert names(hits) == ["lidar", "filters", "cameras"]
    assert hits[0].rank_score > hits[1].rank_score > hits[2].rank_score
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
    for mode in ("hybrid", "dense", "sparse"):
        hits = corpus_store.search(
            query_text=QUERY_TEXT, query_vector=QUERY_VECTOR, k=3, mode=mode, paths=[]
        )
        assert hits == [], mode


def test_dense_search_without_a_vector_is_a_caller_error(corpus_store):
    with pytest.raises(ValueError, match="needs a query_vector"):
        corpus_store.search(query_text=QUERY_TEXT, query_vector=None, k=3, mode="dense")


def test_search_of_an_empty_or_missing_collection_is_empty(store, new_store):
    missing = new_store("never-created")
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


def test_upsert_batches_large_inputs(store, engine, monkeypatch):
    monkeypatch.setattr(MODULES[engine], "UPSERT_BATCH_SIZE", 3)
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


def test_ids_by_path_lists_every_page(corpus_store, engine, monkeypatch):
    monkeypatch.setattr(MODULES[engine], "PAGE_SIZE", 2)  # force several scroll pages
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
    assert corpus_store.search(query_text=QUERY_TEXT, query_vector=QUERY_VECTOR, k=3) == []
    corpus_store.drop()  # dropping twice is harmless


def test_a_dropped_collection_can_be_rebuilt(corpus_store):
    corpus_store.drop()
    corpus_store.ensure_collection(dimension=3)  # e.g. `ingest_book --force` after a new model
    corpus_store.upsert([CORPUS["legs"][0]], [[0.0, 1.0, 0.0]])
    hits = corpus_store.search(query_text="balance", query_vector=[0.0, 1.0, 0.0], k=3)
    assert [hit.chunk.id for hit in hits] == [CORPUS["legs"][0].id]


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


def test_upsert_without_a_collection_says_what_failed(new_store):
    store = new_store("missing")
    with pytest.raises(VectorStoreError, match="could not store chunks"):
        store.upsert([CORPUS["lidar"][0]], [CORPUS["lidar"][1]])


def test_searches_keep_working_while_another_thread_ingests(corpus_store):
    errors: list[BaseException] = []
    results: list[list[str]] = []
    done = threading.Event()

    def searcher():
        while not done.is_set():
            try:
                hits = corpus_store.search(query_text=QUERY_TEXT, query_vector=QUERY_VECTOR, k=3)
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
            corpus_store.upsert(new, [unit(0, 0, 1, 0.1 * i) for i in range(30)])
            corpus_store.delete([chunk.id for chunk in new[:10]])
    finally:
        done.set()
        for thread in threads:
            thread.join()
    assert errors == []
    assert results
    assert all(result == ["lidar"] for result in results)
    assert corpus_store.count() == len(CORPUS) + 10 * 20


def test_real_embedder_finds_the_passage_that_answers(new_store):
    from ragsite.rag.embeddings import LocalEmbedder

    embedder = LocalEmbedder.default()
    texts = [
        "Lidar measures distance by timing laser pulses that bounce back from surfaces.",
        "An inertial measurement unit combines accelerometers and gyroscopes.",
        "Zero-moment point control keeps a walking humanoid from tipping over.",
        "Ownership in Rust means each value has a single owner that frees it.",
    ]
    chunks = [make_chunk(f"book/{i}.md", text) for i, text in enumerate(texts)]
    store = new_store("real")
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


# --- both engines give the same answers ------------------------------------------------------


def _book_corpus(n: int = 150):
    """n consecutive pieces of textbook text with random 4-d vectors, and 8 queries.

    The pieces do not overlap and vary in length, so no two chunks get the same BM25
    score for a query: the engines order equal scores differently, and a tie would
    make "the same order" meaningless.
    """
    words = []
    for path in sorted(TEXTBOOK_DIR.rglob("*.md*")):
        words.extend(re.findall(r"\S+", path.read_text(encoding="utf-8", errors="replace")))
    rng = random.Random(7)
    chunks, vectors, start = [], [], 0
    for i in range(n):
        size = 40 + i % 37
        text = " ".join(words[start : start + size])
        chunks.append(make_chunk(f"book/{i % 15}.md", text, i))
        vectors.append(unit(*(rng.gauss(0, 1) for _ in range(4))))
        start += size
    queries = [" ".join(words[s : s + 5]) for s in (rng.randrange(0, start - 5) for _ in range(8))]
    return chunks, vectors, queries


def test_both_engines_rank_and_score_alike(edge_engine):
    """Same chunks, same queries: the same hits in the same order, with the same scores.

    Hybrid ties are frequent here (RRF gives 1/2 to the first of either list), so this
    also checks that the edge store breaks them as local mode does.
    """
    chunks, vectors, queries = _book_corpus()
    client = QdrantStore(memory_client(), "same")
    edge = EdgeStore(edge_engine, "same")
    for target in (client, edge):
        target.ensure_collection(dimension=4)
        target.upsert(chunks, vectors)
    query_vector = unit(1, 0.5, -0.2, 0.1)
    for text in [QUERY_TEXT, *queries]:
        for mode in ("hybrid", "dense", "sparse"):
            for paths in (None, ["book/3.md", "book/4.md"]):
                kwargs = {"query_text": text, "query_vector": query_vector, "k": 5, "mode": mode}
                a = client.search(**kwargs, paths=paths)
                b = edge.search(**kwargs, paths=paths)
                label = f"{mode} {text!r} {paths}"
                assert [h.chunk.id for h in b] == [h.chunk.id for h in a], label
                assert [h.rank_score for h in b] == pytest.approx(
                    [h.rank_score for h in a], rel=1e-4
                ), label
                assert [h.score for h in b] == pytest.approx([h.score for h in a], abs=1e-5), label


def test_edge_constants_match_the_client_store():
    """edgestore copies these (to avoid importing qdrant_client); they must not drift."""
    for name in (
        "DENSE",
        "SPARSE",
        "UPSERT_BATCH_SIZE",
        "PAGE_SIZE",
        "PREFETCH_FACTOR",
        "PREFETCH_MIN",
        "DIMENSION_MISMATCH_MESSAGE",
        "LAYOUT_MISMATCH_MESSAGE",
        "STORE_OPEN_FAILED_MESSAGE",
        "STORE_CALL_FAILED_MESSAGE",
    ):
        assert getattr(edgestore, name) == getattr(vectorstore, name), name


# --- edge only ----------------------------------------------------------------------------


@pytest.fixture
def edge_settings(settings):
    settings.VECTOR_ENGINE = "qdrant-edge"
    return settings


def test_each_collection_is_a_folder_under_qdrant_path(edge_settings):
    store = providers.get_store()
    assert isinstance(store, EdgeStore)
    assert store is providers.get_store()
    store.ensure_collection(dimension=4)
    store.upsert([CORPUS["lidar"][0]], [CORPUS["lidar"][1]])
    assert store.health() == {
        "status": "ok",
        "mode": "embedded",
        "points": 1,
        "engine": "qdrant-edge",
    }
    folder = Path(edge_settings.QDRANT_PATH) / "edge" / "test"
    assert (folder / "edge_config.json").is_file()
    other = providers.get_store("eval-tmp")
    assert isinstance(other, EdgeStore)
    assert other.count() == 0
    assert not (Path(edge_settings.QDRANT_PATH) / "collection").exists()  # no local-mode files


def test_server_mode_ignores_the_embedded_engine(edge_settings):
    edge_settings.QDRANT_URL = "http://127.0.0.1:9"  # never contacted: the client is lazy
    store = providers.get_store()
    assert isinstance(store, QdrantStore)
    assert store.mode == "server"


def test_the_default_engine_is_qdrant_client_local_mode(settings):
    assert settings.VECTOR_ENGINE == "qdrant-local"
    assert isinstance(providers.get_store(), QdrantStore)


def test_data_persists_after_close_and_reopen(edge_settings):
    store = providers.get_store()
    store.ensure_collection(dimension=4)
    chunks, vectors = zip(*CORPUS.values(), strict=True)
    store.upsert(list(chunks), list(vectors))
    providers.reset()  # closes the engine, which releases the folder

    reopened = providers.get_store()
    assert reopened is not store
    assert reopened.count() == len(CORPUS)
    hits = reopened.search(query_text=QUERY_TEXT, query_vector=QUERY_VECTOR, k=3)
    assert names(hits) == ["lidar", "filters", "cameras"]
    assert hits[0].chunk == CORPUS["lidar"][0]


def test_a_closed_store_fails_instead_of_reopening(edge_settings):
    store = EdgeStore(get_engine(get_config()), "test")
    store.ensure_collection(dimension=4)
    store.upsert([CORPUS["legs"][0]], [CORPUS["legs"][1]])
    close_engine()
    # A stale reference must not quietly take the folder's lock again.
    with pytest.raises(VectorStoreError, match="closed"):
        store.health()
    with pytest.raises(VectorStoreError, match="closed"):
        store.search(query_text="balance", query_vector=None, k=3, mode="sparse")
    assert EdgeStore(get_engine(get_config()), "test").count() == 1


def _probe_from_another_process(data_dir: Path, store_dir: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "RAGSITE_TEST_SUBPROCESS": "1",
        "RAGSITE_DATA_DIR": str(data_dir),
        "QDRANT_PATH": str(store_dir),
        "QDRANT_COLLECTION": "test",
        "VECTOR_ENGINE": "qdrant-edge",
    }
    return subprocess.run(
        [sys.executable, "-c", LOCK_PROBE],
        cwd=REPO_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_second_process_gets_a_clear_lock_error(edge_settings, tmp_path):
    store_dir = Path(edge_settings.QDRANT_PATH)
    store = providers.get_store()
    store.ensure_collection(dimension=4)  # this process now holds the collection's folder
    store.upsert([CORPUS["legs"][0]], [CORPUS["legs"][1]])

    locked = _probe_from_another_process(tmp_path / "data", store_dir)
    assert locked.returncode == 3, locked.stderr
    assert locked.stdout.strip() == STORE_LOCKED_MESSAGE.format(path=store_dir / "edge" / "test")
    assert "Traceback" not in locked.stderr
    assert store.count() == 1  # the holder is undisturbed by the refused opener

    # What the message asks for: once the holder lets go, the folder opens again (the
    # engine refuses a second opener in this process too, so this shows the release).
    providers.reset()
    assert EdgeStore(get_engine(get_config()), "test").count() == 1


def test_a_foreign_folder_is_a_layout_mismatch_until_dropped(edge_engine):
    folder = edge_engine.root / "test"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("not a shard")
    store = EdgeStore(edge_engine, "test")
    assert store.count() == 0
    with pytest.raises(DimensionMismatch, match="not created by ragsite"):
        store.ensure_collection(dimension=4)
    assert (folder / "notes.txt").is_file()  # never written into
    store.drop()  # what `ingest_book --force` does next
    store.ensure_collection(dimension=4)
    assert store.count() == 0


@pytest.mark.parametrize("name", ["..", "../book", "a/b", ".hidden", ""])
def test_a_collection_name_must_be_a_plain_folder_name(edge_engine, name):
    with pytest.raises(ConfigurationError, match="QDRANT_COLLECTION"):
        EdgeStore(edge_engine, name)


def test_optimize_keeps_every_answer(edge_engine):
    chunks, vectors, queries = _book_corpus(60)
    store = EdgeStore(edge_engine, "opt")
    store.ensure_collection(dimension=4)
    store.upsert(chunks, vectors)
    query_vector = unit(0.3, 1, 0, 0)
    before = [store.search(query_text=q, query_vector=query_vector, k=5) for q in queries]
    store.optimize()
    after = [store.search(query_text=q, query_vector=query_vector, k=5) for q in queries]
    assert store.count() == len(chunks)
    assert [[h.chunk.id for h in hits] for hits in after] == [
        [h.chunk.id for h in hits] for hits in before
    ]


# Imports only the edge store (not Django's setup, not qdrant_client): a quick child.
CRASH_WRITER = """
import os, sys
from pathlib import Path
from ragsite.rag.edgestore import EdgeEngine, EdgeStore
from ragsite.rag.types import Chunk
texts = ["Lidar returns a point cloud.", "Cameras capture images.", "Legs need balance."]
chunks = [
    Chunk(id=id_, text=t, body=t, title="T", heading="", path=f"{i}.md", url=None,
          position=0, content_hash="")
    for i, (id_, t) in enumerate(zip(sys.argv[2:], texts))
]
store = EdgeStore(EdgeEngine(Path(sys.argv[1])), "test")
store.ensure_collection(dimension=4)
store.upsert(chunks, [[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0]])
os.kill(os.getpid(), 9)  # no close, no flush
"""


def test_chunks_survive_a_killed_process(tmp_path):
    root = tmp_path / "edge"
    ids = [chunk_id(f"{i}.md", "") for i in range(3)]
    killed = subprocess.run(
        [sys.executable, "-c", CRASH_WRITER, str(root), *ids],
        cwd=REPO_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert killed.returncode == -9, killed.stderr
    engine = EdgeEngine(root)
    try:
        store = EdgeStore(engine, "test")  # the kernel released the dead writer's lock
        assert store.count() == 3
        hits = store.search(query_text="point cloud", query_vector=[0.9, 0.1, 0, 0], k=2)
        assert [hit.chunk.id for hit in hits] == [ids[0], ids[1]]
        assert hits[0].chunk.text == "Lidar returns a point cloud."
    finally:
        engine.close()


@pytest.mark.django_db(transaction=True)
def test_switching_to_edge_reingests_without_embedding_again(settings, tmp_path):
    """Set VECTOR_ENGINE=qdrant-edge, run the ingestion again: same chunks, zero embeddings."""
    from ingestion.services import book_ingest
    from tests.ingestion.conftest import TINY_PAGES, copy_pages

    book = copy_pages(TEXTBOOK_DIR, tmp_path / "book", TINY_PAGES)
    first = book_ingest(book_dir=book, source="manage.py")
    assert first.status == "succeeded", first.errors
    assert first.embeddings_computed > 0
    local_ids = providers.get_store().ids_by_path()

    settings.VECTOR_ENGINE = "qdrant-edge"  # resets the providers: the edge store is empty
    assert providers.get_store().count() == 0
    second = book_ingest(book_dir=book, source="manage.py")
    assert second.status == "succeeded", second.errors
    assert second.embeddings_computed == 0  # vectors come from the embedding cache
    edge = providers.get_store()
    assert isinstance(edge, EdgeStore)
    assert edge.ids_by_path() == local_ids


def test_health_names_the_edge_engine(edge_settings):
    from ragsite import health

    providers.get_store().ensure_collection(dimension=4)
    report = health.check_vector_store()
    assert report["status"] == "ok"
    assert report["mode"] == "embedded"
    assert report["engine"] == "qdrant-edge"
    assert report["points"] == 0
