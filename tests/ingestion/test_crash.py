"""Kill an ingestion part way (a real subprocess, SIGKILL) and show that every page stays
searchable and that the next run finishes the job without duplicates.

Three processes, like a real deployment: the first ingests version 1 of the pages,
edits them all (version 2) and starts ingesting again, and is killed once its first
page is written; a fresh process inspects the index; a third runs the next ingestion
and inspects the result.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from tests.conftest import REPO_DIR

from .conftest import copy_pages, subprocess_env

PAGES = ("appendix/glossary.md", "intro.md", "lab/parts-list.mdx")
GLOSSARY = """---
title: Glossary
---

# Glossary

**Actuator**: a motor or other device that moves a joint of the robot.

**Odometry**: estimating how far the robot moved from its wheel or joint encoders.
"""

# Runs in the subprocesses.
# - "crash": ingest version 1, append an errata section naming `quokkamarker<i>` to page
#   i, then ingest again with the real embedder wrapped to sleep after each call (so the
#   test can kill the process between pages);
# - "repair": ingest (marking the killed task failed first), then inspect;
# - "inspect": print both sides of the index as JSON; sparse searches for the markers
#   tell which version of each page the store serves.
DRIVER = r"""
import json, sys, time
from pathlib import Path
import django
django.setup()
from django.core.management import call_command
from ingestion.models import CachedEmbedding, DocumentChunk, IngestionTask
from ingestion.services import book_ingest, tasks_fail_stale
from ragsite.rag import providers
from ragsite.rag.config import get_config

PAGES = sys.argv[2].split(",")
book = get_config().book_dir


def ingest(embedder=None):
    task = book_ingest(book_dir=book, source="manage.py", embedder=embedder)
    return {"status": task.status, "embeddings_computed": task.embeddings_computed,
            "errors": task.errors}


def inspect():
    store = providers.get_store()
    sqlite = {}
    for chunk_id, path in DocumentChunk.objects.values_list("id", "document__path"):
        sqlite.setdefault(path, []).append(chunk_id)
    hits = {}
    for i in range(len(PAGES)):
        found = store.search(query_text=f"quokkamarker{i}", query_vector=None, k=1, mode="sparse")
        hits[f"quokkamarker{i}"] = found[0].chunk.path if found else None
    return {
        "sqlite": sqlite,
        "store": {p: sorted(ids) for p, ids in store.ids_by_path().items()},
        "store_count": store.count(),
        "cached": sorted(CachedEmbedding.objects.values_list("content_hash", flat=True)),
        "indexed_hashes": sorted(set(DocumentChunk.objects.values_list("content_hash", flat=True))),
        "tasks": [(t.status, t.errors) for t in IngestionTask.objects.order_by("created_at")],
        "hits": hits,
    }


mode = sys.argv[1]
if mode == "crash":
    call_command("migrate", verbosity=0)
    print(json.dumps(ingest()), flush=True)
    for i, page in enumerate(PAGES):
        path = book / page
        path.write_text(path.read_text(encoding="utf-8") + f"\n\n## Errata\n\nThe "
                        f"quokkamarker{i} appendix corrects the torque tables.\n", encoding="utf-8")
    real = providers.get_embedder()

    class Paced:
        provider, model, dimension = real.provider, real.model, real.dimension

        def embed_sync(self, texts):
            vectors = real.embed_sync(texts)
            time.sleep(1.0)
            return vectors

    ingest(Paced())
    print(json.dumps({"status": "not killed"}), flush=True)
elif mode == "repair":
    tasks_fail_stale()
    print(json.dumps({"run": ingest(), "index": inspect()}))
else:
    print(json.dumps(inspect()))
"""


def driver(env: dict[str, str], mode: str) -> dict:
    result = subprocess.run([sys.executable, "-c", DRIVER, mode, ",".join(PAGES)], cwd=REPO_DIR,
                            env=env, capture_output=True, text=True, timeout=240, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def newest_task(db_path: Path) -> tuple[int, str, int] | None:
    """Return (number of tasks, status, files_done of the newest), read straight from SQLite."""
    if not db_path.exists():
        return None
    try:
        with closing(sqlite3.connect(db_path, timeout=1)) as db:
            count = db.execute("SELECT COUNT(*) FROM ingestion_ingestiontask").fetchone()[0]
            newest = db.execute(
                "SELECT status, files_done FROM ingestion_ingestiontask ORDER BY created_at DESC LIMIT 1"
            ).fetchone()
    except sqlite3.OperationalError:  # not migrated yet, or busy
        return None
    return (count, *newest) if newest else None


@pytest.mark.timeout(600)  # four Python processes; slow on a busy machine
def test_a_killed_ingestion_leaves_every_page_searchable_and_the_next_run_repairs(
    tmp_path, docusaurus_fixture_dir
):
    book = copy_pages(docusaurus_fixture_dir, tmp_path / "book", PAGES[1:])
    (book / "appendix").mkdir()
    (book / PAGES[0]).write_text(GLOSSARY, encoding="utf-8")
    db_path = tmp_path / "data" / "ragsite.sqlite3"
    env = subprocess_env(data_dir=tmp_path / "data", qdrant_path=tmp_path / "qdrant", book_dir=book)

    process = subprocess.Popen([sys.executable, "-c", DRIVER, "crash", ",".join(PAGES)],
                               cwd=REPO_DIR, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        # Wait for the second run (version 2) to have written its first page.
        while (state := newest_task(db_path)) is None or not (
            state[0] == 2 and state[1] == "running" and state[2] >= 1
        ):
            assert process.poll() is None, "the ingestion ended before it could be killed"
            assert time.monotonic() < deadline, f"no page written in time: {state}"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        output = process.communicate(timeout=30)[0]
    finally:
        process.kill()
        process.wait()
    v1 = json.loads(output.splitlines()[0])
    assert v1["status"] == "succeeded", v1["errors"]
    count, status, files_done = newest_task(db_path)
    assert status == "running"  # killed, not finished
    assert 1 <= files_done < len(PAGES)

    # A fresh process: every page SQLite knows has all its points in the store (its old
    # or its new version), so every page is still searchable.
    after_kill = driver(env, "inspect")
    assert set(after_kill["sqlite"]) == set(PAGES)
    for page, ids in after_kill["sqlite"].items():
        assert set(ids) <= set(after_kill["store"].get(page, [])), page
    assert after_kill["hits"]["quokkamarker0"] == PAGES[0]  # the first page is in version 2

    result = driver(env, "repair")
    repair, final = result["run"], result["index"]

    assert repair["status"] == "succeeded", repair["errors"]
    # The killed task was marked failed by the next run.
    assert [status for status, _errors in final["tasks"]] == ["succeeded", "failed", "succeeded"]
    assert final["tasks"][1][1][-1]["message"].startswith("interrupted")
    # Both sides agree exactly, without duplicates, and serve version 2 of every page.
    assert {p: sorted(ids) for p, ids in final["sqlite"].items()} == final["store"]
    assert final["store_count"] == sum(len(ids) for ids in final["sqlite"].values())
    assert final["hits"] == {f"quokkamarker{i}": page for i, page in enumerate(PAGES)}
    # What the killed run had embedded was cached: the repair embedded only the rest.
    missing_after_kill = set(final["indexed_hashes"]) - set(after_kill["cached"])
    assert repair["embeddings_computed"] == len(missing_after_kill)
