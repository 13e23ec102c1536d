"""`python manage.py check_index [--repair]`: do SQLite's chunks and the store's points agree?

It lists chunks without a point (a write to the store that was lost) and points without
a chunk (left behind), page by page, and exits 1 on drift. With `--repair` it deletes the
orphan points and rebuilds the pages whose points are missing from the embedding cache
(nothing is embedded again for an unchanged page), then checks again. Like `ingest_book`,
it needs the embedded store to itself: stop the server first.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ragsite.health import IndexDrift, index_drift, index_repair
from ragsite.rag.exceptions import RagError

SHOWN_PER_KIND = 20  # pages listed per kind of drift


class Command(BaseCommand):
    help = "Compare SQLite's chunks with the vector store's points; --repair fixes the drift."

    def add_arguments(self, parser):
        parser.add_argument(
            "--repair",
            action="store_true",
            help="Delete orphan points and rebuild pages with missing points (no new embeddings).",
        )

    def handle(self, *args, repair: bool, **options):
        try:
            drift = index_drift()
            self._report(drift)
            if drift.in_sync:
                return
            if not repair:
                raise CommandError(
                    "The index has drifted; run `python manage.py check_index --repair`.",
                    returncode=1,
                )
            outcome = index_repair(drift=drift)
            self.stdout.write(
                f"Repair: {outcome['orphans_deleted']} orphan points deleted, "
                f"{outcome['pages_repaired']} pages rebuilt, "
                f"{outcome['embeddings_computed']} embeddings computed."
            )
            for path in outcome["pages_failed"]:
                self.stderr.write(f"  could not rebuild {path} (run `manage.py ingest_book`)")
            after = index_drift()
            self._report(after)
        except RagError as exc:
            raise CommandError(exc.message) from None
        if not after.in_sync:
            raise CommandError("The index still differs after the repair.", returncode=1)

    def _report(self, drift: IndexDrift) -> None:
        missing = sum(len(ids) for ids in drift.missing.values())
        orphans = sum(len(ids) for ids in drift.orphans.values())
        self.stdout.write(
            f"SQLite: {drift.chunks} chunks; vector store: {drift.points} points; "
            f"{missing} chunks without a point, {orphans} points without a chunk."
        )
        for label, pages in (("missing points", drift.missing), ("orphan points", drift.orphans)):
            for path in sorted(pages)[:SHOWN_PER_KIND]:
                self.stdout.write(f"  {label}: {path or '(no path)'}: {len(pages[path])}")
            if len(pages) > SHOWN_PER_KIND:
                self.stdout.write(f"  ... and {len(pages) - SHOWN_PER_KIND} more pages")
        if drift.in_sync:
            self.stdout.write(self.style.SUCCESS("The index is in sync."))
