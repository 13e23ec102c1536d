"""The embedded store's data folder: one ragsite process at a time, and one engine.

Both embedded engines (`vectorstore`: qdrant-client local mode, `edgestore`:
qdrant-edge) call `claim()` before they open anything:

- **One process.** `claim()` takes an exclusive, non-blocking `flock` on
  `RAGSITE_DATA_DIR/ragsite.lock` and on `QDRANT_PATH/ragsite.lock` (two processes
  with different data folders could still name the same QDRANT_PATH). A second server or `ingest_book` on the same folder
  gets `VectorStoreLocked` (`STORE_LOCKED_MESSAGE`, naming the folder), whichever
  VECTOR_ENGINE either uses; the
  engines' own locks (local mode's `.lock`, qdrant-edge's WAL) differ and would let a
  server with the other engine start and drift apart. The kernel drops the lock when
  the process exits, even after `kill -9`; `release()` (from `providers.reset()`)
  drops it earlier.
- **One engine.** `QDRANT_PATH/engine.json` records the engine that built the index.
  When another engine opens the folder, the index is migrated: that engine's own
  files, left from an earlier time it was used and so out of date, are deleted, the
  record is rewritten, and the new engine starts empty. SQLite's embedding cache holds
  every chunk's vector, so the next ingestion (`manage.py serve` starts one when the
  index is empty; or `manage.py ingest_book`) writes every page again and embeds
  nothing. The other engine's files are left as they are (delete them to free space).

Server mode (QDRANT_URL) never calls this: any number of processes share a server.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from pathlib import Path
from typing import IO, Any

import portalocker

from .config import RagConfig
from .exceptions import STORE_LOCKED_MESSAGE, VectorStoreError, VectorStoreLocked

logger = logging.getLogger(__name__)

LOCK_FILE = "ragsite.lock"
ENGINE_FILE = "engine.json"  # in QDRANT_PATH
# Where each engine keeps its files inside QDRANT_PATH.
ENGINE_FILES = {
    "qdrant-local": ("collection", "meta.json"),
    "qdrant-edge": ("edge",),
}

ENGINE_SWITCHED_MESSAGE = (
    "The index in {path} was built by {previous}; VECTOR_ENGINE is now {engine}, so its "
    "{engine} index starts empty and the next ingestion (`manage.py serve` starts one, or "
    "run `python manage.py ingest_book`) rebuilds it from the embedding cache without "
    "embedding anything again."
)
ENGINE_RECORD_FAILED_MESSAGE = "Could not record the vector engine in {path}: {error}"

_held: dict[Path, IO[Any]] = {}  # folder -> open, locked handle of its ragsite.lock
_lock = threading.Lock()


def lock_folders(config: RagConfig) -> list[Path]:
    """Return the folders whose lock the embedded store needs: the data folder (SQLite)
    and the store folder, which another data folder's process could name too."""
    data = config.data_dir.resolve()
    store = config.qdrant_path.resolve()
    return [data] if store == data else [data, store]


def _acquire(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    handle = (folder / LOCK_FILE).open("a")
    try:
        portalocker.lock(
            handle, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING
        )
    except portalocker.exceptions.LockException:
        handle.close()
        raise VectorStoreLocked(STORE_LOCKED_MESSAGE.format(path=folder)) from None
    _held[folder] = handle


def recorded_engine(store_dir: Path) -> str | None:
    """Return the engine that built the index in `store_dir`, or None for a new folder.

    A folder from before the record existed is recognised by its files when only one
    engine's are there; with both (or neither), it is None and the opener adopts it.
    """
    try:
        engine = json.loads((store_dir / ENGINE_FILE).read_text(encoding="utf-8"))["engine"]
    except (OSError, ValueError, KeyError, TypeError):
        engine = None
    if engine in ENGINE_FILES:
        return engine
    present = [
        name for name, files in ENGINE_FILES.items() if any((store_dir / f).exists() for f in files)
    ]
    return present[0] if len(present) == 1 else None


def _remove_engine_files(store_dir: Path, engine: str) -> None:
    for name in ENGINE_FILES[engine]:
        target = store_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def claim(config: RagConfig, *, engine: str) -> None:
    """Lock the data folder for this process and make `engine` the index's engine.

    Idempotent within the process. Migrates a folder built by the other engine (see
    the module docstring) and logs one sentence when it does.

    Raises:
        VectorStoreLocked: another process holds the data folder.
        VectorStoreError: the record cannot be written.
    """
    store_dir = config.qdrant_path
    with _lock:
        taken = []
        try:
            for folder in lock_folders(config):
                if folder not in _held:
                    _acquire(folder)
                    taken.append(folder)
        except VectorStoreLocked:
            for folder in taken:  # all or nothing: a refused opener holds no folder
                _unlock(_held.pop(folder))
            raise
        previous = recorded_engine(store_dir)
        record = store_dir / ENGINE_FILE
        if previous == engine and record.is_file():
            return
        try:
            if previous is not None and previous != engine:
                # This engine's files (if any) predate the other engine's run: stale.
                _remove_engine_files(store_dir, engine)
                logger.warning(
                    ENGINE_SWITCHED_MESSAGE.format(path=store_dir, previous=previous, engine=engine)
                )
            store_dir.mkdir(parents=True, exist_ok=True)
            temporary = record.with_suffix(".tmp")
            temporary.write_text(json.dumps({"engine": engine}) + "\n", encoding="utf-8")
            temporary.replace(record)
        except OSError as exc:
            raise VectorStoreError(
                ENGINE_RECORD_FAILED_MESSAGE.format(path=store_dir, error=exc)
            ) from exc


def release() -> None:
    """Let go of every data folder this process holds (tests, `providers.reset()`)."""
    with _lock:
        handles = list(_held.values())
        _held.clear()
    for handle in handles:
        _unlock(handle)


def _unlock(handle: IO[Any]) -> None:
    try:
        portalocker.unlock(handle)
    finally:
        handle.close()
