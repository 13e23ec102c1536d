"""qdrant-edge only: its folders, names, crash safety, optimize and health.

Every behaviour shared with qdrant-client's local mode is in test_store_contract.py.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragsite.rag import providers
from ragsite.rag.edgestore import EdgeEngine, EdgeStore, _Points
from ragsite.rag.exceptions import ConfigurationError, DimensionMismatch
from ragsite.rag.store_core import StoredPoint
from ragsite.rag.types import Chunk, chunk_id
from ragsite.rag.vectorstore import QdrantStore, memory_client
from tests.conftest import REPO_DIR
from tests.rag.corpus import CORPUS, book_corpus, unit


@pytest.fixture
def edge_engine(tmp_path) -> Iterator[EdgeEngine]:
    """A private edge engine in a temp folder, closed (locks released) afterwards."""
    engine = EdgeEngine(tmp_path / "edge")
    yield engine
    engine.close()


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


def test_the_default_engine_is_qdrant_edge(settings):
    assert settings.VECTOR_ENGINE == "qdrant-edge"
    assert isinstance(providers.get_store(), EdgeStore)


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
    chunks, vectors, queries = book_corpus(60)
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


def _chunk(key: str, text: str, path: str = "a.md") -> Chunk:
    return Chunk(
        id=key,
        text=text,
        body=text,
        title="T",
        heading="",
        path=path,
        url=None,
        position=0,
        content_hash=text,
    )


def test_searches_read_payloads_and_vectors_from_memory_until_a_write(edge_engine):
    store = EdgeStore(edge_engine, "memory")
    store.ensure_collection(dimension=4)
    first, second = chunk_id("a.md", 0), chunk_id("b.md", 0)
    store.upsert(
        [_chunk(first, "lidar ranges"), _chunk(second, "lidar cameras", "b.md")],
        [unit(1, 0, 0, 0), unit(0, 1, 0, 0)],
    )
    query = unit(1, 0.5, 0, 0)

    def channels():
        dense, sparse = store.search_channels(query_text="lidar", query_vector=query, k=5)
        return {h.chunk.id: (h.chunk.text, round(h.score, 4)) for h in dense}, {
            h.chunk.id: (h.chunk.text, round(h.score, 4)) for h in sparse
        }

    dense, sparse = channels()
    assert dense[first] == sparse[first] == ("lidar ranges", round(0.8944, 4))
    assert dense[second][0] == "lidar cameras"
    assert channels() == (dense, sparse)  # the second search is served from memory

    # A changed chunk is read anew (text and vector), a deleted one is gone.
    store.upsert([_chunk(first, "lidar ranges, measured again")], [unit(0, 0, 1, 0)])
    store.delete([second])
    dense, sparse = channels()
    assert dense == {first: ("lidar ranges, measured again", 0.0)}
    assert sparse == dense


def test_warm_reads_the_points_searches_would_read_one_by_one(edge_engine, monkeypatch):
    store = EdgeStore(edge_engine, "warm")
    store.ensure_collection(dimension=4)
    keys = [chunk_id(f"{n}.md", 0) for n in range(5)]
    store.upsert(
        [_chunk(key, f"lidar note {n}", f"{n}.md") for n, key in enumerate(keys)],
        [unit(1, n, 0, 0) for n in range(5)],
    )
    assert {chunk.id for chunk in store.warm(3)} <= set(keys)
    assert len(store.warm(3)) == 3  # at most `limit`
    warmed = {chunk.id: chunk.text for chunk in store.warm(100)}
    assert warmed == {key: f"lidar note {n}" for n, key in enumerate(keys)}

    # Every point a search finds is in memory now: the search reads none from the engine.
    reads: list[list[str]] = []
    real_retrieve = store._retrieve
    monkeypatch.setattr(
        store, "_retrieve", lambda ids, **kw: reads.append(list(ids)) or real_retrieve(ids, **kw)
    )
    dense, sparse = store.search_channels(query_text="lidar", query_vector=unit(1, 0, 0, 0), k=5)
    assert {hit.chunk.id for hit in dense} == set(keys)
    assert {hit.chunk.text for hit in sparse} == set(warmed.values())
    assert reads == []


def test_chunks_at_is_answered_from_memory_once_it_holds_the_whole_collection(
    edge_engine, monkeypatch
):
    store = EdgeStore(edge_engine, "placed")
    store.ensure_collection(dimension=4)
    chunks = [
        dataclasses.replace(
            _chunk(chunk_id(path, n), f"{path} part {n}", path),
            position=n,
            content_hash=path + str(n),
        )
        for path in ("a.md", "b.md")
        for n in range(3)
    ]
    store.upsert(chunks, [unit(1, n, 0, 0) for n in range(len(chunks))])
    places = [("a.md", 1), ("b.md", 2), ("a.md", 7), ("c.md", 0)]
    engine_calls: list[str] = []
    real_call = store._call
    monkeypatch.setattr(
        store,
        "_call",
        lambda what, *a, **kw: engine_calls.append(what) or real_call(what, *a, **kw),
    )

    def placed() -> list[tuple[str, int, str]]:
        return sorted((c.path, c.position, c.text) for c in store.chunks_at(places))

    expected = [("a.md", 1, "a.md part 1"), ("b.md", 2, "b.md part 2")]
    store.warm(2)  # a part of the collection: the engine is still asked
    engine_calls.clear()
    assert placed() == expected
    assert engine_calls
    store.warm(100)  # the whole of it
    engine_calls.clear()
    assert placed() == expected
    assert engine_calls == []

    # A write forgets it: the changed text is read from the engine.
    store.upsert(
        [dataclasses.replace(chunks[1], text="a.md part 1, rewritten")], [unit(0, 1, 0, 0)]
    )
    engine_calls.clear()
    assert placed()[0] == ("a.md", 1, "a.md part 1, rewritten")
    assert engine_calls


def test_a_store_without_a_search_memory_warms_nothing():
    store = QdrantStore(memory_client(), "plain")
    store.ensure_collection(dimension=4)
    store.upsert([_chunk(chunk_id("a.md", 0), "lidar")], [unit(1, 0, 0, 0)])
    assert store.warm(10) == []


def test_a_read_that_overlapped_a_write_is_not_remembered():
    memory = _Points()
    generation = memory.generation
    memory.changed()  # a write happened while the search ran
    memory.remember({"x": StoredPoint(id="x", payload={"text": "old"})}, generation=generation)
    assert memory.known(["x"]) == {}
    memory.remember(
        {"x": StoredPoint(id="x", payload={"text": "new"})}, generation=memory.generation
    )
    assert memory.known(["x"])["x"].payload == {"text": "new"}


# Imports only the edge store (not Django's setup, not qdrant_client): a quick child.
CRASH_WRITER = """
import os, sys
from pathlib import Path
from ragsite.rag.edgestore import EdgeEngine, EdgeStore, _Points
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


def test_health_names_the_edge_engine(edge_settings):
    from ragsite import health

    providers.get_store().ensure_collection(dimension=4)
    report = health.check_vector_store()
    assert report["status"] == "ok"
    assert report["mode"] == "embedded"
    assert report["engine"] == "qdrant-edge"
    assert report["points"] == 0
