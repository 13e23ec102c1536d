"""The task lifecycle: one `IngestionTask` row per run, who owns it, its counters.

A task is created `queued` by `task_create` (at most one real ingestion is active at a
time), dispatched by `task_start` to a background thread here or to a Celery worker
(`task_dispatch`), run by `book_ingest` (through `task_run`), and
finished with its counters, timings and the files it touched. A task whose process is
gone is marked failed by `tasks_fail_stale`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from ragsite import observability as metrics
from ragsite.rag.exceptions import IngestionQueueUnavailable, IngestionRunning

from ..models import IngestionTask
from .discovery import book_target, display_dir

logger = logging.getLogger(__name__)

# A task of another host that has not saved progress for this long is considered dead.
OTHER_HOST_STALE_AFTER = timedelta(minutes=30)
# The `hostname` of a task queued for a Celery worker that has not claimed it yet.
QUEUE_OWNER = "(queued for a worker)"
QUEUE_UNAVAILABLE_MESSAGE = (
    "The ingestion queue (CELERY_BROKER_URL) is unreachable; the task was not queued."
)

INGESTION_RUNNING_MESSAGE = "An ingestion is already running (task {task_id})."
STALE_TASK_MESSAGE = "interrupted: the process running it stopped"
CANCELLED_MESSAGE = "cancelled: interrupted by the user; the pages written so far stay indexed"

# Set by task_create and cleared when the run ends: tasks this process owns. A task row
# with this process's pid and start time but absent here belongs to an earlier process
# that happened to have the same pid.
_ACTIVE_HERE: set[str] = set()
_ACTIVE_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What one ingestion did to one page (passed to `on_progress`)."""

    path: str
    action: str  # new | changed | repaired | unchanged | deleted | skipped | failed
    chunks: int = 0
    embedded: int = 0
    message: str = ""


ProgressCallback = Callable[[IngestionTask, FileOutcome], None]

# Which list of `IngestionTask.file_changes` a page's outcome goes to (unchanged: none).
FILE_CHANGE_LISTS = {
    "new": "new",
    "changed": "changed",
    "repaired": "changed",
    "deleted": "deleted",
    "failed": "failed",
    "skipped": "skipped",
}


def _process_token(pid: int) -> str | None:
    """Return an identity of a live process (boot id + start time), None if it is gone."""
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None  # /proc works, the process does not exist
    except OSError:
        pass
    else:
        # The command name may contain spaces and parentheses; fields restart after the last ")".
        start_time = stat.rsplit(")", 1)[1].split()[19]
        return f"{boot_id}:{start_time}"
    try:  # no /proc: the best we can do is "a process with this pid exists"
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return f"pid:{pid}"


def _task_alive(task: IngestionTask, *, host: str, now) -> bool:
    if task.hostname != host:
        return now - task.updated_at < OTHER_HOST_STALE_AFTER
    if task.pid is None:
        return False
    if task.pid == os.getpid():
        with _ACTIVE_LOCK:
            return str(task.id) in _ACTIVE_HERE
    token = _process_token(task.pid)
    return token is not None and token == task.process_token


def tasks_fail_stale() -> int:
    """Mark queued/running tasks whose process is gone as failed; return how many.

    Called by `task_start`, the `ingest_book` command and the serve command at start-up.
    """
    now = timezone.now()
    host = socket.gethostname()
    failed = 0
    for task in IngestionTask.objects.filter(status__in=IngestionTask.ACTIVE):
        if _task_alive(task, host=host, now=now):
            continue
        started = task.started_at or task.created_at
        failed += IngestionTask.objects.filter(pk=task.pk, status__in=IngestionTask.ACTIVE).update(
            status=IngestionTask.Status.FAILED,
            finished_at=now,
            duration_s=round((now - started).total_seconds(), 3),
            errors=[*task.errors, {"path": "", "message": STALE_TASK_MESSAGE}],
            updated_at=now,
        )
        logger.warning("ingestion task %s marked failed: %s", task.id, STALE_TASK_MESSAGE)
    return failed


def task_create(
    *,
    source: str,
    book_dir: Path,
    path: str = "",
    force: bool = False,
    dry_run: bool = False,
) -> IngestionTask:
    """Create a queued task owned by this process, unless another ingestion is active.

    The check and the insert run in one SQLite IMMEDIATE transaction (settings), so two
    concurrent callers are serialised and the second one sees the first task.

    Raises:
        IngestionRunning: a (non dry-run) task is queued or running; `details.task_id` names it.
    """
    pid = os.getpid()
    try:
        with transaction.atomic():
            if not dry_run:
                _raise_if_active()
            task = IngestionTask.objects.create(
                source=source,
                book_dir=display_dir(book_dir),
                path=path or "",
                force=force,
                dry_run=dry_run,
                pid=pid,
                hostname=socket.gethostname(),
                process_token=_process_token(pid) or "",
            )
    except IntegrityError:  # another process inserted its task between our check and insert
        _raise_if_active()
        raise
    with _ACTIVE_LOCK:
        _ACTIVE_HERE.add(str(task.id))
    return task


def _raise_if_active() -> None:
    active = (
        IngestionTask.objects.filter(status__in=IngestionTask.ACTIVE, dry_run=False)
        .order_by("created_at")
        .first()
    )
    if active is not None:
        raise IngestionRunning(
            INGESTION_RUNNING_MESSAGE.format(task_id=active.id),
            details={"task_id": str(active.id)},
        )


def task_start(
    *,
    source: str,
    path: str | None = None,
    force: bool = False,
    on_progress: ProgressCallback | None = None,
) -> IngestionTask:
    """Start an ingestion of BOOK_DIR (or its sub-path) in a background thread of this process.

    Returns the queued task at once; poll it with `ingestion.selectors.task_get`.
    `on_progress` is called from that thread after each page (see `book_ingest`); a
    task queued for a Celery worker reports no progress here.

    Raises:
        PathOutsideBook / BadRequest: `path` escapes BOOK_DIR or does not exist.
        IngestionRunning: another ingestion is queued or running.
    """
    target = book_target(path=path)
    tasks_fail_stale()
    task = task_create(source=source, book_dir=target.book_dir, path=target.scope, force=force)
    task_dispatch(task=task, book_dir=target.book_dir, on_progress=on_progress)
    return task


def ingest_queue() -> str:
    """Return where ingestions run: "celery" (a worker process) or "thread" (this one)."""
    if settings.INGEST_QUEUE != "auto":
        return settings.INGEST_QUEUE
    return "celery" if settings.QDRANT_URL and settings.CELERY_BROKER_URL else "thread"


def task_dispatch(
    *, task: IngestionTask, book_dir: Path, on_progress: ProgressCallback | None = None
) -> None:
    """Run a queued task: in a background thread here, or by a Celery worker.

    A queued Celery task belongs to no process until a worker claims it (`task_run`), so
    it is marked as owned by the queue: `tasks_fail_stale` then treats it like a task of
    another host, failing it only when it has made no progress for OTHER_HOST_STALE_AFTER.

    Raises:
        IngestionQueueUnavailable: the broker refused the task (it is marked failed).
    """
    if ingest_queue() == "celery":
        from ragsite.celery import app

        from ..tasks import INGEST_TASK_NAME

        with _ACTIVE_LOCK:
            _ACTIVE_HERE.discard(str(task.id))
        IngestionTask.objects.filter(pk=task.pk).update(hostname=QUEUE_OWNER, pid=None)
        try:
            app.send_task(
                INGEST_TASK_NAME, kwargs={"task_id": str(task.id), "book_dir": str(book_dir)}
            )
        except Exception as exc:  # kombu raises many kinds of connection errors
            logger.warning("ingestion task %s could not be queued: %s", task.id, exc)
            _task_fail(task.id, QUEUE_UNAVAILABLE_MESSAGE)
            raise IngestionQueueUnavailable(QUEUE_UNAVAILABLE_MESSAGE) from None
        logger.info("ingestion task %s queued for a worker (source %s)", task.id, task.source)
        return
    thread = threading.Thread(
        target=_task_run_serving,
        kwargs={"task_id": task.id, "book_dir": book_dir, "on_progress": on_progress},
        name=f"ingest-{task.id}",
        daemon=True,
    )
    thread.start()
    logger.info("ingestion task %s started in the background (source %s)", task.id, task.source)


def _task_fail(task_id, message: str) -> None:
    now = timezone.now()
    IngestionTask.objects.filter(pk=task_id, status__in=IngestionTask.ACTIVE).update(
        status=IngestionTask.Status.FAILED,
        finished_at=now,
        errors=[{"path": "", "message": message}],
        updated_at=now,
    )


def _task_claim(task_id) -> IngestionTask | None:
    """Make this process the owner of a queued task; None when it is no longer queued."""
    pid = os.getpid()
    claimed = IngestionTask.objects.filter(pk=task_id, status=IngestionTask.Status.QUEUED).update(
        pid=pid,
        hostname=socket.gethostname(),
        process_token=_process_token(pid) or "",
        updated_at=timezone.now(),
    )
    if not claimed:
        return None
    with _ACTIVE_LOCK:
        _ACTIVE_HERE.add(str(task_id))
    return IngestionTask.objects.get(pk=task_id)


def task_run(*, task_id, book_dir: Path, on_progress: ProgressCallback | None = None) -> str:
    """Run a queued task in this process (a background thread or a Celery worker).

    Returns the task's final status ("skipped" when it was no longer queued, e.g. failed
    as stale before a busy worker got to it). Releases this thread's DB connection.
    """
    from .pipeline import book_ingest  # the pipeline imports this module

    try:
        task = _task_claim(task_id)
        if task is None:
            logger.warning("ingestion task %s is no longer queued; not run", task_id)
            return "skipped"
        task = book_ingest(
            book_dir=Path(book_dir),
            path=task.path or None,
            force=task.force,
            source=task.source,
            task=task,
            on_progress=on_progress,
        )
        return task.status
    except Exception:  # book_ingest records its own failures; this is a last resort
        logger.exception("ingestion task %s crashed", task_id)
        IngestionTask.objects.filter(pk=task_id, status__in=IngestionTask.ACTIVE).update(
            status=IngestionTask.Status.FAILED, finished_at=timezone.now()
        )
        return IngestionTask.Status.FAILED
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE_HERE.discard(str(task_id))
        connection.close()


def _task_run_serving(*, task_id, book_dir: Path, on_progress: ProgressCallback | None) -> None:
    """`task_run` in a background thread of the serving process; then, when the run
    wrote to the store, warm what serving reads (`chat/services/warming.py`).

    The store's search memory forgets everything on a write, so without this the first
    questions after an ingest (the quickstart's first one included) would read their
    points one by one, as after a start without warming. The GIL is held for the
    warming's ~0.5-1.5 s, a small part of the ingest before it.
    """
    task_run(task_id=task_id, book_dir=book_dir, on_progress=on_progress)
    try:
        wrote = (
            IngestionTask.objects.filter(pk=task_id)
            .values_list("chunks_added", "chunks_deleted")
            .first()
        )
    except Exception:  # the run's outcome is recorded already; warming only saves time
        logger.exception("could not read what ingestion task %s wrote; not warming", task_id)
        return
    finally:
        connection.close()
    from chat.services.warming import caches_warm, heap_refreeze  # chat depends on ingestion

    if wrote and any(wrote):
        caches_warm()  # logs its own failures
    heap_refreeze()  # a serving process's heap, without the run's garbage


_COUNTERS = (
    "files_total",
    "files_done",
    "files_new",
    "files_changed",
    "files_unchanged",
    "files_failed",
    "files_deleted",
    "files_skipped",
    "chunks_added",
    "chunks_deleted",
    "chunks_unchanged",
    "embeddings_computed",
    "embeddings_reused",
    "tokens_embedded",
)


class Run:
    """The task's counters, shared by the embedding thread and the writer thread."""

    def __init__(self, task: IngestionTask, on_progress: ProgressCallback | None):
        self.task = task
        task.file_changes = {}
        self.on_progress = on_progress
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._partial = 0.0  # fraction of the file being embedded
        self.started = time.monotonic()

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self.task, name, getattr(self.task, name) + value)

    def error(self, path: str, message: str) -> None:
        with self._lock:
            self.task.errors = [*self.task.errors, {"path": path, "message": message}]

    def partial(self, fraction: float) -> None:
        self._partial = min(max(fraction, 0.0), 1.0)
        self.save()

    def _note(self, outcome: FileOutcome) -> None:
        """Add the page to the task's list of new, changed, deleted, failed or skipped files."""
        name = FILE_CHANGE_LISTS.get(outcome.action)
        if name is not None:
            with self._lock:
                changes = self.task.file_changes
                changes[name] = [*changes.get(name, []), outcome.path]

    def file_done(self, outcome: FileOutcome, **counts: int) -> None:
        self._note(outcome)
        self.add(files_done=1, **counts)
        self._partial = 0.0
        self.save()
        if self.on_progress is not None:
            with self._lock:
                self.on_progress(self.task, outcome)

    def removed(self, outcome: FileOutcome) -> None:
        self._note(outcome)
        self.save()
        if self.on_progress is not None:
            with self._lock:
                self.on_progress(self.task, outcome)

    def save(self) -> None:
        """Write the counters, progress and heartbeat (one UPDATE)."""
        with self._save_lock:
            with self._lock:
                task = self.task
                if task.files_total:
                    done = min(task.files_done + self._partial, task.files_total)
                    task.progress = round(0.99 * done / task.files_total, 4)
                task.duration_s = round(time.monotonic() - self.started, 3)
                values: dict[str, Any] = {name: getattr(task, name) for name in _COUNTERS}
                values.update(
                    progress=task.progress,
                    errors=list(task.errors),
                    file_changes={k: list(v) for k, v in task.file_changes.items()},
                    duration_s=task.duration_s,
                )
            values["updated_at"] = timezone.now()
            IngestionTask.objects.filter(pk=task.pk).update(**values)


def task_finish(run: Run, status: str) -> None:
    """Save the task's final status, counters and timings."""
    task = run.task
    run.save()
    task.status = status
    task.finished_at = timezone.now()
    task.duration_s = round(time.monotonic() - run.started, 3)
    if status == IngestionTask.Status.SUCCEEDED:
        task.progress = 1.0
    task.save()
    if not task.dry_run:
        metrics.ingestion_finished(task)
