"""Ingestion through Celery: a real `celery -A ragsite worker` process and a real Redis
broker. The web side only queues (it never opens the store); the worker ingests; status
is read from the database; a worker killed mid-run leaves the task failed and the index
whole, and the next run repairs it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.processes import run_manage as manage
from tests.scale.conftest import REPO_DIR, scale_env

PAGES = 24

# Runs in a fresh process on the same data folder: queue, fail stale, or inspect.
DRIVER = """
import json, sys, django
django.setup()
from ingestion import services
from ingestion.models import Document, DocumentChunk
action = sys.argv[1]
if action == "queue":
    task = services.task_start(source="api")
    print(json.dumps({"task_id": str(task.pk), "status": task.status, "host": task.hostname}))
elif action == "fail-stale":
    print(json.dumps({"failed": services.tasks_fail_stale()}))
else:
    from ragsite.rag import providers
    store = providers.get_store()
    sqlite = {}
    for chunk_id, path in DocumentChunk.objects.values_list("id", "document__path"):
        sqlite.setdefault(path, []).append(chunk_id)
    print(json.dumps({
        "sqlite": {p: sorted(ids) for p, ids in sqlite.items()},
        "store": {p: sorted(ids) for p, ids in store.ids_by_path().items()},
        "documents": Document.objects.filter(chunk_count__gt=0).count(),
    }))
"""


def _book(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i in range(PAGES):
        paragraphs = [
            f"Station {i} keeps a tide table for harbour {i}. The keeper notes the height "
            f"of each high tide at dawn and at dusk, and compares it with record {i * 7}."
            for _ in range(2)
        ] + [f"## Signals {i}\n\nFlag {i} means the pier at berth {i} is closed to boats."]
        (folder / f"station-{i:02d}.md").write_text(
            f"# Station {i}\n\n" + "\n\n".join(paragraphs) + "\n", encoding="utf-8"
        )
    return folder


def _drive(env: dict[str, str], action: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", DRIVER, action],
        cwd=REPO_DIR, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _task(db: Path, task_id: str) -> tuple[str, int]:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT status, files_done FROM ingestion_ingestiontask WHERE id = ?",
            (task_id.replace("-", ""),),
        ).fetchone()
    return row


def _wait(db: Path, task_id: str, done, *, worker, timeout: float = 180) -> tuple[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        state = _task(db, task_id)
        if done(state):
            return state
        assert worker.poll() is None, "the worker died"
        assert time.monotonic() < deadline, f"task {task_id} stuck at {state}"
        time.sleep(0.1)


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "celery", "-A", "ragsite", "worker", "--pool", "solo",
               "--concurrency", "1", "--loglevel", "INFO", "--without-gossip",
               "--without-mingle", "--without-heartbeat"]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=REPO_DIR, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 90
    while b" ready." not in log.read_bytes():
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the Celery worker did not get ready"
        time.sleep(0.2)
    return process


@pytest.fixture
def celery_env(tmp_path, redis_url) -> dict[str, str]:
    env = scale_env(
        data_dir=tmp_path / "data",
        BOOK_DIR=str(_book(tmp_path / "book")),
        INGEST_QUEUE="celery",
        CELERY_BROKER_URL=redis_url,
    )
    migrated = manage(env, "migrate", "--no-input")
    assert migrated.returncode == 0, migrated.stderr
    return env


def _assert_whole(index: dict) -> None:
    """Every page SQLite knows has exactly its points in the store."""
    assert index["sqlite"] == {p: ids for p, ids in index["store"].items() if p in index["sqlite"]}


def test_web_queues_and_a_worker_process_ingests(celery_env, tmp_path):
    db = tmp_path / "data" / "ragsite.sqlite3"
    worker = _start_worker(celery_env, tmp_path / "worker.log")
    try:
        queued = _drive(celery_env, "queue")
        assert queued["status"] == "queued"
        status, files_done = _wait(
            db, queued["task_id"], lambda s: s[0] in {"succeeded", "failed"}, worker=worker
        )
        assert (status, files_done) == ("succeeded", PAGES)
        again = _drive(celery_env, "queue")  # a second run: nothing changed
        assert _wait(db, again["task_id"], lambda s: s[0] == "succeeded", worker=worker)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    index = _drive(celery_env, "inspect")  # the worker has let go of the store
    assert index["documents"] == PAGES
    assert index["sqlite"] == index["store"]
    assert "Task ragsite.ingest" in (tmp_path / "worker.log").read_text()


def test_a_killed_worker_leaves_the_task_failed_and_the_next_run_repairs(celery_env, tmp_path):
    db = tmp_path / "data" / "ragsite.sqlite3"
    worker = _start_worker(celery_env, tmp_path / "worker.log")
    try:
        queued = _drive(celery_env, "queue")
        _wait(db, queued["task_id"], lambda s: s[0] == "running" and s[1] >= 3, worker=worker)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        worker.kill()
        worker.wait()
    assert _drive(celery_env, "fail-stale")["failed"] == 1
    status, files_done = _task(db, queued["task_id"])
    assert status == "failed"
    assert 3 <= files_done < PAGES
    _assert_whole(_drive(celery_env, "inspect"))

    worker = _start_worker(celery_env, tmp_path / "worker.log")
    try:
        repair = _drive(celery_env, "queue")
        state = _wait(
            db, repair["task_id"], lambda s: s[0] in {"succeeded", "failed"}, worker=worker
        )
        assert state[0] == "succeeded"
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    index = _drive(celery_env, "inspect")
    assert index["documents"] == PAGES
    assert index["sqlite"] == index["store"]
