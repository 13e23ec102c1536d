"""`python manage.py serve`: the one command that runs ragsite with its default book.

It migrates the database, marks ingestions left `running` by a killed process as
failed, starts an ingestion of BOOK_DIR in the background when the index is empty,
and serves the ASGI app with uvicorn in this same process: the embedded Qdrant folder
allows one process, so the ingestion thread and the server share one client.
"""

from __future__ import annotations

import logging

import uvicorn
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from ragsite.rag import providers
from ragsite.rag.exceptions import VectorStoreLocked

logger = logging.getLogger(__name__)


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

    def handle(self, *args, host: str, port: int, ingest: str, no_migrate: bool, **options):
        if not no_migrate:
            call_command("migrate", interactive=False, verbosity=0)
        from ingestion import services
        from ingestion.selectors import index_summary

        services.tasks_fail_stale()
        try:
            points = providers.get_store().count()
        except VectorStoreLocked as exc:
            raise CommandError(exc.message) from None
        empty = points == 0 or index_summary()["documents"] == 0
        if ingest == "always" or (ingest == "if-empty" and empty):
            task = services.task_start(source="manage.py")
            self.stdout.write(f"Ingesting {settings.BOOK_DIR} in the background (task {task.pk}).")
        self.stdout.write(f"ragsite is serving on http://{host}:{port}/ (Ctrl+C to stop)")
        # One worker: local Qdrant is single-process (see docs/vector-store.md).
        uvicorn.run(
            "ragsite.asgi:application",
            host=host,
            port=port,
            workers=1,
            lifespan="off",
            log_level=settings.LOG_LEVEL.lower(),
            # The client address is ragsite's business (TRUSTED_PROXY_HOPS, ratelimit.py):
            # uvicorn's proxy headers would take the client-written left-most entry.
            proxy_headers=False,
        )
