"""One page to its chunks: decode, parse and chunk a page's bytes with the book's settings.

`page_chunks` is the one page-to-chunks step: the ingestion pipeline and the evaluation
harness (which indexes a book into a temporary store) both call it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from ragsite.rag.config import get_config
from ragsite.rag.types import Chunk

if TYPE_CHECKING:
    from ragsite.rag.config import RagConfig

    from ..sites import Site

logger = logging.getLogger(__name__)


class PageUnreadable(Exception):
    """A page's bytes cannot be decoded, parsed or chunked (the message says why)."""


@dataclass(frozen=True, slots=True)
class PageChunks:
    """A page cut into chunks: its title, its published URL, its chunks (ids unique)."""

    path: str
    title: str
    url: str
    draft: bool
    chunks: list[Chunk]


def _unique_chunks(path: str, chunks: Sequence[Chunk]) -> list[Chunk]:
    seen: set[str] = set()
    unique = []
    for chunk in chunks:
        if chunk.id in seen:
            logger.warning("%s: duplicate chunk id %s dropped", path, chunk.id)
            continue
        seen.add(chunk.id)
        unique.append(chunk)
    return unique


def page_chunks(
    *, path: str, data: bytes, site: Site | None = None, config: RagConfig | None = None
) -> PageChunks:
    """Decode, parse and chunk one page with CHUNK_TOKENS, overlap and the site settings.

    Args:
        path: the page's path relative to the book folder (posix).
        data: the file's bytes.
        site: the book's site generator (`ingestion.sites.book_site`), which decides page
            URLs and heading ids; None: the chunker's default.
        config: default `get_config()`.

    Returns:
        The page; a draft page (`draft: true` front matter) has `draft` set.

    Raises:
        PageUnreadable: the bytes are not text, the page does not parse, or CHUNK_TOKENS
            is too small for it.
    """
    # Imported here: the serving process imports the services for its views, and only
    # an ingestion (or an evaluation) needs the Markdown parser.
    from ..chunking import build_chunks
    from ..markdown import PageError, decode_page

    config = config or get_config()
    try:
        page, chunks = build_chunks(
            path=path,
            text=decode_page(data),
            site_url=config.site_url,
            docs_prefix=config.site_docs_prefix,
            max_tokens=config.chunk_tokens,
            overlap_tokens=config.chunk_overlap_tokens,
            site=site,
        )
    except (PageError, ValueError) as exc:  # ValueError: CHUNK_TOKENS too small for the page
        raise PageUnreadable(str(exc)) from exc
    return PageChunks(
        path=path,
        title=page.title or PurePosixPath(path).stem,
        url=page.url or "",
        draft=bool(page.draft),
        chunks=_unique_chunks(path, chunks),
    )
