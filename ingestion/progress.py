"""Progress of a background ingestion as plain lines, for a terminal that is also a server log.

`bin/serve`'s first ingest runs in a thread while uvicorn logs to the same terminal, so a
tqdm bar would be torn by log lines: one line every few seconds instead, and one at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .models import IngestionTask
from .services import FileOutcome

# A line at most this often (the first page and the last always get one).
PROGRESS_EVERY_S = 5.0


class ProgressLines:
    """An `on_progress` callback that writes "ingest: 120/400 pages ..." lines."""

    def __init__(
        self,
        write: Callable[[str], None],
        *,
        every_s: float = PROGRESS_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.write = write
        self.every_s = every_s
        self.clock = clock
        self.started = clock()
        self.last: float | None = None
        self.finished = False

    def __call__(self, task: IngestionTask, outcome: FileOutcome) -> None:
        now = self.clock()
        if outcome.action == "failed":
            self.write(f"ingest: {outcome.path} could not be ingested: {outcome.message}")
        done = task.files_done >= task.files_total > 0
        if done and not self.finished:
            self.finished = True
            self.write(
                f"ingest: all {task.files_total} pages read in {now - self.started:.0f} s: "
                f"{task.files_new} new, {task.files_changed} changed, "
                f"{task.files_unchanged} unchanged, {task.files_failed} failed; "
                f"{task.embeddings_computed} chunks embedded"
            )
            return
        if done or (self.last is not None and now - self.last < self.every_s):
            return
        self.last = now
        share = task.files_done / task.files_total if task.files_total else 0.0
        self.write(
            f"ingest: {task.files_done}/{task.files_total} pages ({share:.0%}), "
            f"{task.embeddings_computed} chunks embedded, {now - self.started:.0f} s"
        )
