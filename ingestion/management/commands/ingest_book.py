"""`python manage.py ingest_book [PATH] [--force] [--dry-run]`: index a book, incrementally."""

from __future__ import annotations

import atexit
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from ingestion.models import IngestionTask
from ingestion.services import FileOutcome, book_ingest, book_target, tasks_fail_stale
from ingestion.sites import book_site
from ragsite.rag import providers
from ragsite.rag.config import get_config
from ragsite.rag.exceptions import RagError

BOOK_FAILED_MESSAGE = "The book could not be ingested: {reason}"
INTERRUPTED_MESSAGE = (
    "Interrupted. The pages written so far stay indexed; the next run finishes the job."
)

# qdrant-client closes a still-open embedded store from `__del__` during interpreter
# shutdown, when imports fail, and prints a traceback. Close it while Python is whole.
atexit.register(providers.reset)


class _Progress:
    """A tqdm bar on a terminal, one plain line per page otherwise (logs, CI)."""

    def __init__(self, command: BaseCommand, *, tty: bool) -> None:
        self.command = command
        self.tty = tty
        self.bar: tqdm | None = None

    def __call__(self, task: IngestionTask, outcome: FileOutcome) -> None:
        line = self._describe(outcome)
        if self.tty:
            if self.bar is None:
                self.bar = tqdm(total=task.files_total, unit="page", dynamic_ncols=True)
            if outcome.action == "deleted":
                self.bar.write(line)
            else:
                self.bar.update(task.files_done - self.bar.n)
                self.bar.set_postfix_str(outcome.path[-40:], refresh=False)
                if outcome.action == "failed":
                    self.bar.write(line)
            return
        width = len(str(task.files_total))
        counter = (
            "-" * (2 * width + 1)
            if outcome.action == "deleted"
            else (f"{task.files_done:>{width}}/{task.files_total}")
        )
        self.command.stdout.write(f"[{counter}] {line}")

    @staticmethod
    def _describe(outcome: FileOutcome) -> str:
        action = f"{outcome.action:<9} {outcome.path}"
        if outcome.action in {"new", "changed", "repaired"}:
            return f"{action}: {outcome.chunks} chunks, {outcome.embedded} embedded"
        if outcome.action == "deleted":
            return f"{action}: {outcome.chunks} chunks removed"
        if outcome.message:
            return f"{action}: {outcome.message}"
        return action

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Command(BaseCommand):
    help = (
        "Ingest a Markdown/MDX book (default BOOK_DIR): only new and changed pages are "
        "embedded, deleted pages leave the index."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "path",
            nargs="?",
            help="The book folder, or a folder or file inside BOOK_DIR (default: BOOK_DIR).",
        )
        parser.add_argument(
            "--force", action="store_true", help="Embed every chunk again and rewrite every page."
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Show what would change; embed and write nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            # A folder or file inside BOOK_DIR is that part of the book (document paths
            # stay relative to BOOK_DIR); any other folder is ingested as the book itself.
            target = book_target(path=options["path"], local=True)
        except RagError as exc:
            raise CommandError(exc.message) from None
        try:
            # Opened first: in embedded mode a running server holds the store's folder,
            # and VectorStoreLocked says so in one sentence.
            store = providers.get_store()
            embedder = providers.get_embedder()
        except RagError as exc:
            raise CommandError(exc.message) from None
        tasks_fail_stale()
        progress = _Progress(self, tty=self.stdout.isatty())
        try:
            task = book_ingest(
                book_dir=target.book_dir,
                path=target.scope or None,
                force=options["force"],
                dry_run=options["dry_run"],
                source=IngestionTask.Source.COMMAND,
                embedder=embedder,
                store=store,
                on_progress=progress,
            )
        except RagError as exc:  # another ingestion is running, a bad path
            raise CommandError(exc.message) from None
        except KeyboardInterrupt:
            raise CommandError(INTERRUPTED_MESSAGE) from None
        finally:
            progress.close()
        self._summary(
            task, site=book_site(book_dir=target.book_dir, config=get_config()).describe()
        )
        if task.status != IngestionTask.Status.SUCCEEDED:
            reasons = [e["message"] for e in task.errors if not e["path"]] or [
                "see the errors above"
            ]
            raise CommandError(BOOK_FAILED_MESSAGE.format(reason=reasons[-1]))

    def _summary(self, task: IngestionTask, *, site: str) -> None:
        where = task.book_dir + (f"/{task.path}" if task.path else "")
        prefix = "Dry run of" if task.dry_run else "Ingestion of"
        if task.dry_run:
            where += " (nothing was embedded or written)"
        style = (
            self.style.SUCCESS
            if task.status == IngestionTask.Status.SUCCEEDED
            else self.style.ERROR
        )
        lines = [
            style(f"{prefix} {where}: {task.status} in {task.duration_s or 0:.1f} s"),
            f"  files:      {task.files_total} found: {task.files_new} new, "
            f"{task.files_changed} changed, {task.files_unchanged} unchanged, "
            f"{task.files_deleted} deleted, {task.files_failed} failed, "
            f"{task.files_skipped} skipped (draft)",
            f"  chunks:     {task.chunks_added} added, {task.chunks_deleted} deleted, "
            f"{task.chunks_unchanged} in unchanged pages",
            f"  embeddings: {task.embeddings_computed} computed, "
            f"{task.embeddings_reused} reused from the cache",
            f"  site:       {site}",
        ]
        file_errors = [e for e in task.errors if e["path"]]
        if file_errors:
            lines.append(self.style.WARNING(f"  {len(file_errors)} page(s) could not be read:"))
            lines.extend(f"    {e['path']}: {e['message']}" for e in file_errors)
        self.stdout.write("\n".join(lines))
