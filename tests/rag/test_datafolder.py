"""The embedded data folder: one ragsite process whatever the engine, one recorded engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ragsite.rag import datafolder, providers
from ragsite.rag.config import get_config
from ragsite.rag.datafolder import ENGINE_FILE, recorded_engine
from ragsite.rag.edgestore import EdgeStore
from ragsite.rag.exceptions import STORE_LOCKED_MESSAGE, VectorStoreLocked
from ragsite.rag.vectorstore import QdrantStore
from tests.conftest import DOCUSAURUS_FIXTURE_DIR, REPO_DIR
from tests.rag.corpus import CORPUS, probe_from_another_process


def _record(settings) -> dict:
    return json.loads((Path(settings.QDRANT_PATH) / ENGINE_FILE).read_text())


def test_opening_the_store_records_its_engine(settings):
    settings.VECTOR_ENGINE = "qdrant-local"
    providers.get_store().ensure_collection(dimension=4)
    assert _record(settings) == {"engine": "qdrant-local"}
    providers.reset()
    settings.VECTOR_ENGINE = "qdrant-edge"
    providers.get_store().ensure_collection(dimension=4)
    assert _record(settings) == {"engine": "qdrant-edge"}


def test_a_folder_from_before_the_record_is_recognised_by_its_files(tmp_path):
    assert recorded_engine(tmp_path) is None
    (tmp_path / "collection").mkdir()
    assert recorded_engine(tmp_path) == "qdrant-local"
    (tmp_path / "edge").mkdir()
    assert recorded_engine(tmp_path) is None  # both: the opener adopts the folder as it is
    (tmp_path / "collection").rmdir()
    assert recorded_engine(tmp_path) == "qdrant-edge"


def test_an_unrecorded_folder_with_both_engines_loses_nothing(settings):
    """Folders from before the record may hold both engines: neither is deleted."""
    settings.VECTOR_ENGINE = "qdrant-local"
    local = providers.get_store()
    local.ensure_collection(dimension=4)
    local.upsert([CORPUS["lidar"][0]], [CORPUS["lidar"][1]])
    providers.reset()
    settings.VECTOR_ENGINE = "qdrant-edge"
    edge = providers.get_store()
    edge.ensure_collection(dimension=4)  # the switch: local's files stay, edge starts empty
    providers.reset()
    (Path(settings.QDRANT_PATH) / ENGINE_FILE).unlink()
    settings.VECTOR_ENGINE = "qdrant-local"
    assert providers.get_store().count() == 1
    assert _record(settings) == {"engine": "qdrant-local"}


def test_the_lock_is_taken_once_per_process_and_released_by_reset(settings):
    config = get_config()
    folders = datafolder.lock_folders(config)
    # The suite's QDRANT_PATH is a per-test folder outside the session's data folder.
    assert folders == [Path(settings.DATA_DIR).resolve(), Path(settings.QDRANT_PATH).resolve()]
    datafolder.claim(config, engine="qdrant-local")
    datafolder.claim(config, engine="qdrant-local")  # idempotent within the process
    assert all((folder / datafolder.LOCK_FILE).is_file() for folder in folders)
    providers.reset()
    assert datafolder._held == {}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_DIR,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "RAGSITE_TEST_SUBPROCESS": "1",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("holder", "other"), [("qdrant-local", "qdrant-edge"), ("qdrant-edge", "qdrant-local")]
)
def test_ingest_book_on_the_same_data_folder_is_refused_whatever_its_engine(
    settings, tmp_path, holder, other
):
    """A real `manage.py ingest_book` with the other engine and its own QDRANT_PATH."""
    settings.VECTOR_ENGINE = holder
    store = providers.get_store()  # this process (the "server") holds the data folder
    store.ensure_collection(dimension=4)
    data_dir = Path(settings.DATA_DIR).resolve()
    book = tmp_path / "book"
    book.mkdir()
    (book / "intro.md").write_text("# Intro\n\nBees keep their hive warm in winter.\n")
    refused = _manage(
        "ingest_book",
        env={
            "RAGSITE_DATA_DIR": str(data_dir),
            "QDRANT_PATH": str(tmp_path / "elsewhere"),
            "VECTOR_ENGINE": other,
            "BOOK_DIR": str(book),
        },
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stderr.strip() == ("CommandError: " + STORE_LOCKED_MESSAGE.format(path=data_dir))
    assert not (tmp_path / "elsewhere").exists()  # refused before it touched anything
    assert store.count() == 0


@pytest.mark.django_db(transaction=True)
def test_switching_engines_migrates_from_the_embedding_cache(settings, tmp_path):
    """Switch VECTOR_ENGINE and back, with a page edited in between: each switch starts the
    new engine empty (never stale), and an ingestion refills it embedding nothing again."""
    from ingestion.models import DocumentChunk
    from ingestion.services import book_ingest
    from tests.ingestion.conftest import TINY_PAGES, copy_pages

    def sqlite_ids() -> dict[str, set[str]]:
        ids: dict[str, set[str]] = {}
        for chunk_id, path in DocumentChunk.objects.values_list("id", "document__path"):
            ids.setdefault(path, set()).add(chunk_id)
        return ids

    settings.VECTOR_ENGINE = "qdrant-local"
    book = copy_pages(DOCUSAURUS_FIXTURE_DIR, tmp_path / "book", TINY_PAGES)
    first = book_ingest(book_dir=book, source="manage.py")
    assert first.status == "succeeded", first.errors
    assert first.embeddings_computed > 0
    assert isinstance(providers.get_store(), QdrantStore)
    local_ids = providers.get_store().ids_by_path()

    settings.VECTOR_ENGINE = "qdrant-edge"  # resets the providers: the edge store is empty
    edge = providers.get_store()
    assert isinstance(edge, EdgeStore)
    assert edge.count() == 0
    assert _record(settings) == {"engine": "qdrant-edge"}
    second = book_ingest(book_dir=book, source="manage.py")
    assert second.status == "succeeded", second.errors
    assert second.embeddings_computed == 0  # vectors come from the embedding cache
    assert edge.ids_by_path() == local_ids

    page = book / TINY_PAGES[0]
    page.write_text(page.read_text() + "\n\n## Errata\n\nThe quokka appendix is new.\n")
    edited = book_ingest(book_dir=book, source="manage.py")
    assert edited.status == "succeeded", edited.errors
    assert 0 < edited.embeddings_computed < first.embeddings_computed

    settings.VECTOR_ENGINE = "qdrant-local"  # local mode's points predate the edit: stale
    local = providers.get_store()
    assert local.count() == 0  # removed, not served
    assert _record(settings) == {"engine": "qdrant-local"}
    back = book_ingest(book_dir=book, source="manage.py")
    assert back.status == "succeeded", back.errors
    assert back.embeddings_computed == 0
    assert local.ids_by_path() == sqlite_ids()
    hits = local.search(query_text="quokka appendix", query_vector=None, k=1, mode="sparse")
    assert hits[0].chunk.path == TINY_PAGES[0]


def test_a_refused_claim_holds_no_folder(settings):
    """All or nothing: refused on the store folder, the data folder is let go too."""
    import portalocker

    config = get_config()
    store_dir = Path(settings.QDRANT_PATH).resolve()
    store_dir.mkdir(parents=True)
    with (store_dir / datafolder.LOCK_FILE).open("a") as other:  # another holder's flock
        portalocker.lock(
            other, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING
        )
        with pytest.raises(VectorStoreLocked) as refused:
            datafolder.claim(config, engine="qdrant-local")
        assert refused.value.message == STORE_LOCKED_MESSAGE.format(path=store_dir)
        assert datafolder._held == {}


def test_a_second_server_refuses_to_start_before_touching_the_data_folder(settings, tmp_path):
    """A real `manage.py serve` with the other engine: one sentence, no migrate, no tasks."""
    data_dir = (tmp_path / "data").resolve()
    settings.DATA_DIR = data_dir
    settings.VECTOR_ENGINE = "qdrant-edge"
    providers.get_store().ensure_collection(dimension=4)  # this process is the server
    refused = _manage(
        "serve",
        "--port",
        "9",  # never bound: it stops before
        env={
            "RAGSITE_DATA_DIR": str(data_dir),
            "QDRANT_PATH": str(tmp_path / "elsewhere"),
            "VECTOR_ENGINE": "qdrant-local",
            "BOOK_DIR": str(tmp_path),
        },
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stderr.strip() == "CommandError: " + STORE_LOCKED_MESSAGE.format(path=data_dir)
    assert not (data_dir / "ragsite.sqlite3").exists()  # refused before `migrate`
    assert "serving" not in refused.stdout


def test_a_store_folder_inside_the_data_folder_is_locked_too(settings, tmp_path):
    """Another data folder naming this process's QDRANT_PATH (the default layout's
    `data/qdrant`) is refused as well, whatever its engine."""
    data_dir = (tmp_path / "data").resolve()
    settings.DATA_DIR = data_dir
    settings.QDRANT_PATH = data_dir / "qdrant"
    settings.VECTOR_ENGINE = "qdrant-local"
    providers.get_store().ensure_collection(dimension=4)
    locked = probe_from_another_process(tmp_path / "other", data_dir / "qdrant", "qdrant-edge")
    assert locked.returncode == 3, locked.stderr
    assert locked.stdout.strip() == STORE_LOCKED_MESSAGE.format(path=data_dir / "qdrant")
