"""`python manage.py check_links --site-dir BUILD`: are the index's citation links real?

For authors: every URL the index cites (each indexed page and each section that has a
chunk, rebuilt from the book's files with the same generator rules ingestion used) is
looked up in the folder the site generator built (`site/`, `book/`, `build/`, `public/`).
A URL whose page is not there, or whose page has no element with the anchor's id, is
listed; the command exits 1 when any is broken. Nothing is embedded or written, so it
runs beside a serving process.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ingestion.chunking import BREADCRUMB_SEPARATOR
from ingestion.markdown import PageError, decode_page, parse_page, section_url
from ingestion.models import Document
from ingestion.sites import Site, book_site, check_urls
from ragsite.rag.config import get_config

NO_SITE_URL_MESSAGE = "SITE_URL is not set: the index cites no URLs to check."
SITE_DIR_MISSING_MESSAGE = "No such folder: {path} (give the folder your site generator built)."
NOTHING_INDEXED_MESSAGE = "The index holds no pages yet: run ingest_book first."
BROKEN_MESSAGE = "{count} of {total} cited URLs are broken."


def cited_urls(*, book_dir: Path, site: Site) -> tuple[list[str], list[str]]:
    """Return (the URLs the index cites, warnings about pages that changed since).

    Each indexed page is parsed again with `site`'s rules: its URL, and the URL of every
    section that has a chunk in SQLite (sections are matched by heading path).
    """
    urls: list[str] = []
    warnings: list[str] = []
    documents = Document.objects.filter(chunk_count__gt=0).order_by("path")
    for document in documents.prefetch_related("chunks"):
        headings = {chunk.heading for chunk in document.chunks.all()}
        path = Path(book_dir) / document.path
        try:
            data = path.read_bytes()
            page = parse_page(
                path=document.path, text=decode_page(data), site_url=site.site_url, site=site
            )
        except (OSError, PageError) as exc:
            warnings.append(f"{document.path}: cannot be read now ({exc}); its page URL only")
            if document.url:
                urls.append(document.url)
            continue
        if hashlib.sha256(data).hexdigest() != document.content_sha256:
            warnings.append(f"{document.path}: changed since the last ingest")
        for section in page.sections:
            if BREADCRUMB_SEPARATOR.join(section.heading_path) in headings:
                url = section_url(page.url, section.anchor)
                if url:
                    urls.append(url)
    return list(dict.fromkeys(urls)), warnings


def answer_urls() -> list[str]:
    """Return the URLs cited in stored answers (what readers were actually given)."""
    from chat.models import Message

    urls: list[str] = []
    for sources in Message.objects.exclude(sources=[]).values_list("sources", flat=True):
        urls.extend(s["url"] for s in sources if isinstance(s, dict) and s.get("url"))
    return list(dict.fromkeys(urls))


class Command(BaseCommand):
    help = (
        "Check every URL the index cites against the built site folder: each page must "
        "exist and hold the heading's id. Exits 1 when any link is broken."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--site-dir",
            required=True,
            help="The folder your generator built (mkdocs: site/, mdbook: book/, hugo: public/).",
        )
        parser.add_argument(
            "--book-dir", help="The book folder the index was built from (default: BOOK_DIR)."
        )
        parser.add_argument(
            "--answers",
            action="store_true",
            help="Also check the URLs cited in stored answers.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        config = get_config()
        if not config.site_url:
            raise CommandError(NO_SITE_URL_MESSAGE)
        site_dir = Path(options["site_dir"]).expanduser().resolve()
        if not site_dir.is_dir():
            raise CommandError(SITE_DIR_MISSING_MESSAGE.format(path=site_dir))
        book_dir = Path(options["book_dir"] or config.book_dir).expanduser().resolve()
        site = book_site(book_dir=book_dir, config=config)
        urls, warnings = cited_urls(book_dir=book_dir, site=site)
        if options["answers"]:
            urls = list(dict.fromkeys([*urls, *answer_urls()]))
        if not urls:
            raise CommandError(NOTHING_INDEXED_MESSAGE)
        for warning in warnings:
            self.stdout.write(self.style.WARNING(f"warning: {warning}"))
        broken = check_urls(urls=urls, site_url=config.site_url, site_dir=site_dir)
        self.stdout.write(f"site: {site.describe()}; built site: {site_dir}")
        for link in broken:
            self.stdout.write(
                self.style.ERROR(f"broken {link.kind:<7} {link.url}  ({link.detail})")
            )
        pages = sum(1 for url in urls if "#" not in url)
        summary = f"{len(urls)} cited URLs checked ({pages} pages, {len(urls) - pages} anchors)"
        if broken:
            self.stdout.write(summary)
            raise CommandError(BROKEN_MESSAGE.format(count=len(broken), total=len(urls)))
        self.stdout.write(self.style.SUCCESS(f"{summary}: all good."))
