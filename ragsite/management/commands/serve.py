"""`python manage.py serve`: the one command that runs ragsite with its default book.

It migrates the database, marks ingestions left `running` by a killed process as
failed, starts an ingestion of BOOK_DIR in the background when the index is empty,
and serves the ASGI app with uvicorn in this same process: the embedded Qdrant folder
allows one process, so the ingestion thread and the server share one client.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import uvicorn
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from ragsite.rag import providers
from ragsite.rag.exceptions import VectorStoreLocked

logger = logging.getLogger(__name__)

KEEP_ALIVE_S = 65

WORKERS_NEED_SERVER_MESSAGE = (
    "Several workers need a Qdrant server: the embedded store allows one process, so set "
    "QDRANT_URL (and QDRANT_API_KEY) or serve with --workers 1."
)


class Command(BaseCommand):
    help = "Migrate, ingest the book if the index is empty, and serve ragsite with uvicorn."

    def add_arguments(self, parser):
        parser.add_argument(
            "--host", default="127.0.0.1", help="Interface to bind (default 127.0.0.1)."
        )
        parser.add_argument(
            "--port", type=int, default=settings.PORT, help="Port (default PORT or 8000)."
        )
        parser.add_argument(
            "--ingest",
            choices=["if-empty", "always", "never"],
            default="if-empty",
            help="Ingest BOOK_DIR at start-up: when the index is empty (default), always "
            "(incremental, only changed files are embedded) or never.",
        )
        parser.add_argument("--no-migrate", action="store_true", help="Skip `migrate`.")
        parser.add_argument(
            "--workers",
            type=int,
            default=settings.WEB_CONCURRENCY,
            help="uvicorn worker processes (default WEB_CONCURRENCY or 1); more than 1 "
            "needs QDRANT_URL.",
        )

    def handle(
        self, *args, host: str, port: int, ingest: str, no_migrate: bool, workers: int, **options
    ):
        if workers < 1:
            raise CommandError("--workers must be at least 1.")
        if workers > 1 and not settings.QDRANT_URL:
            raise CommandError(WORKERS_NEED_SERVER_MESSAGE)
        try:  # first: a second server on the data folder must touch nothing (not even tasks)
            points = providers.get_store().count()
        except VectorStoreLocked as exc:
            raise CommandError(exc.message) from None
        if not no_migrate:
            call_command("migrate", interactive=False, verbosity=0)
        from chat.services.warming import caches_warm, heap_freeze_serving
        from ingestion import services
        from ingestion.progress import ProgressLines
        from ingestion.selectors import index_summary

        services.tasks_fail_stale()
        empty = points == 0 or index_summary()["documents"] == 0
        ingesting = ingest == "always" or (ingest == "if-empty" and empty)
        if ingesting:
            # A line every few seconds: the first ingest of a book takes minutes.
            task = services.task_start(
                source="manage.py", on_progress=ProgressLines(self.stdout.write)
            )
            self.stdout.write(f"Ingesting {settings.BOOK_DIR} in the background (task {task.pk}).")
        if settings.PROMETHEUS_MULTIPROC_DIR:  # last run's figures would be added to ours
            metrics_dir = Path(settings.PROMETHEUS_MULTIPROC_DIR)
            shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir(parents=True, exist_ok=True)
        # The first questions after a start find the model, the points and their
        # sentence vectors in memory (chat/services/warming.py): done before the server
        # listens, so it holds no GIL against the first searches. What is alive then is
        # kept out of the garbage collector's full passes (`heap_freeze`); with an
        # ingest running, once it has ended.
        caches_warm()
        heap_freeze_serving(now=not ingesting)
        self.stdout.write(f"ragsite is serving on http://{host}:{port}/ (Ctrl+C to stop)")
        # One worker on the embedded store, which allows one process (docs/vector-store.md).
        # The access log is ragsite's own (ragsite.observability: with the request id).
        uvicorn.run(
            "ragsite.asgi:application",
            host=host,
            port=port,
            workers=workers,
            access_log=False,
            lifespan="auto",
            log_level=settings.LOG_LEVEL.lower(),
            # The client address is ragsite's business (TRUSTED_PROXY_HOPS, ratelimit.py):
            # uvicorn's proxy headers would take the client-written left-most entry.
            proxy_headers=False,
            # An idle keep-alive connection is closed after this long. uvicorn's 5 s is
            # shorter than a proxy's or a busy client's reuse of it (load balancers keep
            # theirs 60 s): a request sent on a connection the server has just closed
            # is lost ("ReadError" in chat_load at 200 streams). Longer than those.
            timeout_keep_alive=KEEP_ALIVE_S,
        )
