"""The store contract: every case runs on both embedded engines behind `VectorStore`.

"client" is qdrant-client's local mode (`vectorstore.QdrantStore`, also the server-mode
adapter), "edge" is qdrant-edge (`edgestore.EdgeStore`). Both subclass
`store_core.StoreCore`, so these cases check each engine's SDK calls and locking
against one behaviour; engine-only cases live in test_vectorstore.py and
test_edgestore.py, the data folder's lock and engine record in test_datafolder.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragsite.rag import edgestore, providers, store_core, vectorstore
from ragsite.rag.edgestore import EdgeEngine, EdgeStore
from ragsite.rag.exceptions import STORE_LOCKED_MESSAGE, DimensionMismatch, VectorStoreError
from ragsite.rag.store_core import fuse_hits
from ragsite.rag.types import VectorStore, chunk_id
from ragsite.rag.vectorstore import QdrantStore, memory_client
from tests.rag.corpus import (
    CORPUS,
    QUERY_TEXT,
    QUERY_VECTOR,
    book_corpus,
    make_chunk,
    names,
    probe_from_another_process,
    unit,
)

ENGINES = ["client", "edge"]
VECTOR_ENGINES = {"client": "qdrant-local", "edge": "qdrant-edge"}


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


@pytest.fixture
def engine_settings(settings, engine):
    """Settings whose embedded store (providers.get_store) is the engine under test."""
    settings.VECTOR_ENGINE = VECTOR_ENGINES[engine]
    return settings


# --- one behaviour ---------------------------------------------------------------------------


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


def test_upsert_batches_large_inputs(store, monkeypatch):
    monkeypatch.setattr(store_core, "UPSERT_BATCH_SIZE", 3)
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
    monkeypatch.setattr(store_core, "PAGE_SIZE", 2)  # force several scroll pages
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


def test_both_engines_rank_and_score_alike(edge_engine):
    """Same chunks, same queries: the same hits in the same order, with the same scores.

    Hybrid ties are frequent here (RRF gives 1/2 to the first of either list), so this
    also checks that the edge store breaks them as local mode does.
    """
    chunks, vectors, queries = book_corpus()
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


def test_channels_give_raw_scores_that_fuse_like_hybrid(corpus_store):
    """What a caller fusing channels itself gets: raw per-channel scores, same fusion."""
    dense = corpus_store.search(
        query_text=QUERY_TEXT, query_vector=QUERY_VECTOR, k=20, mode="dense"
    )
    sparse = corpus_store.search(
        query_text=QUERY_TEXT, query_vector=QUERY_VECTOR, k=20, mode="sparse"
    )
    assert [round(hit.rank_score, 4) for hit in dense] == [1.0, 0.8, 0.6, 0.0]  # cosines
    bm25 = corpus_store.search(query_text=QUERY_TEXT, query_vector=None, k=20, mode="sparse")
    assert [hit.rank_score for hit in sparse] == pytest.approx([hit.score for hit in bm25])
    hybrid = corpus_store.search(query_text=QUERY_TEXT, query_vector=QUERY_VECTOR, k=3)
    fused = fuse_hits([dense, sparse], 3)
    assert [hit.chunk.id for hit in fused] == [hit.chunk.id for hit in hybrid]
    assert [hit.rank_score for hit in fused] == pytest.approx([hit.rank_score for hit in hybrid])
    assert [hit.score for hit in fused] == pytest.approx([hit.score for hit in hybrid])


def test_both_channels_in_one_call_equal_the_channels_alone(corpus_store):
    dense, sparse = corpus_store.search_channels(
        query_text=QUERY_TEXT, query_vector=QUERY_VECTOR, k=20
    )
    for mode, together in (("dense", dense), ("sparse", sparse)):
        alone = corpus_store.search(
            query_text=QUERY_TEXT, query_vector=QUERY_VECTOR, k=20, mode=mode
        )
        assert [h.chunk.id for h in together] == [h.chunk.id for h in alone], mode
        assert [h.rank_score for h in together] == pytest.approx([h.rank_score for h in alone])
        assert [h.score for h in together] == pytest.approx([h.score for h in alone], abs=1e-6)
        assert all(h.chunk.text for h in together)
    # A query of stopwords only has no sparse half; one outside the paths finds nothing.
    words_only = corpus_store.search_channels(
        query_text="what is the", query_vector=QUERY_VECTOR, k=3
    )
    assert words_only[0]
    assert words_only[1] == []
    assert corpus_store.search_channels(
        query_text=QUERY_TEXT, query_vector=QUERY_VECTOR, k=3, paths=[]
    ) == ([], [])


def test_data_persists_after_close_and_reopen(engine_settings):
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


def test_a_closed_store_fails_instead_of_reopening(engine_settings, engine):
    store = providers.get_store()
    store.ensure_collection(dimension=4)
    store.upsert([CORPUS["legs"][0]], [CORPUS["legs"][1]])
    health = store.health()
    assert (health["status"], health["mode"], health["points"]) == ("ok", "embedded", 1)
    (vectorstore.close_client if engine == "client" else edgestore.close_engine)()
    # A stale reference must not quietly take the folder's lock again.
    with pytest.raises(VectorStoreError, match="closed"):
        store.health()
    with pytest.raises(VectorStoreError, match="closed"):
        store.search(query_text="balance", query_vector=None, k=3, mode="sparse")
    with pytest.raises(VectorStoreError, match="closed"):
        store.chunks_at([("legs.md", 0)])
    providers.reset()
    assert providers.get_store().count() == 1


@pytest.mark.parametrize("prober", ENGINES)
def test_a_second_process_is_refused_whatever_its_engine(engine_settings, engine, prober, tmp_path):
    """One lock on the folder: a second process gets one sentence, with either engine."""
    store_dir = Path(engine_settings.QDRANT_PATH)
    store = providers.get_store()
    store.ensure_collection(dimension=4)  # this process now holds the folder
    store.upsert([CORPUS["legs"][0]], [CORPUS["legs"][1]])

    locked = probe_from_another_process(tmp_path / "data", store_dir, VECTOR_ENGINES[prober])
    assert locked.returncode == 3, locked.stderr
    assert locked.stdout.strip() == STORE_LOCKED_MESSAGE.format(path=store_dir)
    assert "Traceback" not in locked.stderr
    assert store.count() == 1  # the holder is undisturbed by the refused opener

    # What the message asks for: once the holder lets go, the folder opens again (a
    # second flock in this process would be refused just the same, so this shows the
    # release).
    providers.reset()
    assert providers.get_store().count() == 1


def test_chunks_at_reads_the_chunks_at_those_places(store, new_store):
    pages = {path: [f"{path} part {i} about joints" for i in range(4)] for path in ("a.md", "b.md")}
    chunks = [
        make_chunk(path, text, position)
        for path, texts in pages.items()
        for position, text in enumerate(texts)
    ]
    store.upsert(chunks, [unit(1, i, 0, 0) for i in range(len(chunks))])
    found = store.chunks_at([("a.md", 1), ("b.md", 3), ("a.md", 9), ("c.md", 0)])
    assert sorted((c.path, c.position, c.text) for c in found) == [
        ("a.md", 1, "a.md part 1 about joints"),
        ("b.md", 3, "b.md part 3 about joints"),
    ]
    assert store.chunks_at([]) == []
    assert new_store("missing").chunks_at([("a.md", 0)]) == []
