"""What the demo page and the health report say about the book: its title, generator and
starter questions made from its own indexed sections.

The title comes from the generator's configuration (`docusaurus.config.*` title,
`book.toml` title, `mkdocs.yml` site_name, …), else SUMMARY.md's heading, else the first
page's title. Questions are phrased from top-level section headings spread over the
book ("Ownership Rules" -> "What are Ownership Rules?").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from ragsite.rag.config import get_config

from .models import Document, DocumentChunk
from .sites import Site, book_site

STARTER_COUNT = 4
# Sections every book has, which make poor questions.
GENERIC_HEADINGS = frozenset(
    {
        "introduction",
        "intro",
        "overview",
        "summary",
        "conclusion",
        "conclusions",
        "next steps",
        "exercises",
        "references",
        "further reading",
        "prerequisites",
        "what you'll learn",
        "what you will learn",
        "learning objectives",
        "key takeaways",
        "review questions",
        "resources",
        "see also",
        "table of contents",
        "contents",
        "welcome",
        "preface",
        "foreword",
        "license",
        "acknowledgments",
        "acknowledgements",
    }
)
GENERIC_TITLES = GENERIC_HEADINGS | {"home", "index", "readme", "getting started"}
QUESTION_WORDS = frozenset(
    {"what", "how", "why", "when", "where", "which", "who", "can", "should", "is", "are", "do"}
)
STATEMENT_VERBS = frozenset(
    {"is", "are", "was", "were", "has", "have", "does", "can", "will", "must", "should"}
)
_NUMBERING_RE = re.compile(
    r"^(?:(?:chapter|part|step|section|lesson|module)\s+)?[\dIVX.]+[:.)\-–]?\s+", re.I
)
_PARENTHESES_RE = re.compile(r"\s*\([^)]*\)")
_WELCOME_RE = re.compile(r"^welcome to\s+(?:the\s+)?", re.I)


@dataclass(frozen=True)
class BookOverview:
    """The book as the demo page presents it."""

    title: str
    generator: str
    detected_from: str
    pages: int
    questions: list[str] = field(default_factory=list)
    is_default_book: bool = False  # ragsite's own docs/


def starter_question(heading: str) -> str | None:
    """Phrase a section heading as a reader's question, or None when it makes a poor one.

    "Ownership Rules" -> "What are Ownership Rules?", "Installing Rust" -> "What should I
    know about installing Rust?", "Step 1: Mount the target" -> "How do I mount the
    target?"; a heading that is already a question stays; sentences and generic
    sections ("Summary") give None.
    """
    step = re.match(r"^\s*step\s+\d+", heading, re.I) is not None
    text = _NUMBERING_RE.sub("", heading.strip()).strip()
    text = _PARENTHESES_RE.sub("", text).strip().rstrip(":.").strip()
    if not 3 <= len(text) <= 70 or text.lower().rstrip("?") in GENERIC_HEADINGS:
        return None
    if not re.search(r"[^\W\d_]", text):  # no letters at all
        return None
    if text.endswith("?"):
        return text
    words = text.split()
    if len(words) > 6:
        return None
    first = words[0]
    if first.lower() in QUESTION_WORDS:  # "Who Rust Is For": a headline, not a question
        return f"What does the book say about {first.lower()}{text[len(first) :]}?"
    if any(word.lower() in STATEMENT_VERBS for word in words[1:]):
        return None  # "Names are folded": a sentence, not a topic
    if step:
        return f"How do I {first.lower()}{text[len(first) :]}?"
    if first.endswith("ing") and len(first) > 4:
        return f"What should I know about {first.lower()}{text[len(first) :]}?"
    article = first in {"The", "A", "An"}
    if article:
        text = first.lower() + text[len(first) :]
    joined = any(joiner in text for joiner in (" and ", " & "))
    if len(words) - article <= 2 or (joined and len(words) - article <= 3):
        last = words[-1].lower()
        plural = joined or (last.endswith("s") and not last.endswith(("ss", "us", "is")))
        return f"What {'are' if plural else 'is'} {text}?"
    return f"What should I know about {text}?"


def _questions(limit: int = STARTER_COUNT) -> list[str]:
    """Questions from top-level sections of pages spread evenly over the book."""
    per_page: dict[str, list[str]] = {}
    rows = DocumentChunk.objects.filter(document__chunk_count__gt=0).order_by(
        "document__path", "position"
    )
    for path, heading in rows.values_list("document__path", "heading"):
        if "appendix" in path.lower():  # reference material makes dull starters
            continue
        top = heading.split(" > ", 1)[0].strip()
        if top and top not in per_page.setdefault(path, []):
            per_page[path].append(top)
    pages = [p for p in per_page if per_page[p]]
    if not pages:
        return []
    step = max(len(pages) / limit, 1.0)
    picked: list[str] = []
    offset = 0
    while len(picked) < limit and offset < len(pages):
        for index in range(limit):
            position = int(index * step) + offset
            if position >= len(pages) or len(picked) >= limit:
                break
            candidates = [starter_question(h) for h in per_page[pages[position]]]
            candidates = [q for q in candidates if q and q not in picked]
            # A short topic makes the best starter.
            short = [q for q in candidates if len(q.split()) <= 7]
            if short or candidates:
                picked.append((short or candidates)[0])
        offset += 1
    return picked[:limit]


def _first_heading(path: Path) -> str:
    from .markdown import decode_page, heading_anchor

    try:
        text = decode_page(path.read_bytes())
    except (OSError, ValueError):
        return ""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(re.sub(r"^---\n.*?\n---\n", "", text, flags=re.S))
    for index, token in enumerate(tokens):
        if token.type == "heading_open" and token.tag == "h1":
            return heading_anchor(tokens[index + 1].content)[0]
    return ""


def _first_page_title(book_dir: Path) -> str:
    documents = list(Document.objects.filter(chunk_count__gt=0).order_by("path"))
    if not documents:
        return ""

    def rank(document: Document) -> tuple[int, int, str]:
        stem = Path(document.path).stem.lower()
        preferred = ("index", "readme", "_index", "intro", "introduction")
        return (
            document.path.count("/"),
            preferred.index(stem) if stem in preferred else len(preferred),
            document.path,
        )

    first = min(documents, key=rank)
    title = first.title.strip()
    if title.lower() in GENERIC_TITLES or not title:
        title = _first_heading(book_dir / first.path) or title
    return _WELCOME_RE.sub("", title).strip() or title


def _is_default_book(book_dir: Path) -> bool:
    return Path(book_dir).resolve() == (Path(settings.BASE_DIR) / "docs").resolve()


def book_title(*, site: Site, book_dir: Path) -> str:
    """The book's title: the generator's configuration, SUMMARY.md, else the first page."""
    title = site.title.strip()
    if title and title.lower() not in {"summary", "table of contents", "contents"}:
        return title
    return _first_page_title(book_dir) or Path(book_dir).name.replace("-", " ").title()


def book_overview(*, questions: bool = True) -> BookOverview:
    """Return the indexed book's title, generator and (optionally) starter questions."""
    config = get_config()
    book_dir = config.book_dir
    site = book_site(book_dir=book_dir, config=config)
    return BookOverview(
        title=book_title(site=site, book_dir=book_dir),
        generator=site.name,
        detected_from=site.detected_from,
        pages=Document.objects.filter(chunk_count__gt=0).count(),
        questions=_questions() if questions else [],
        is_default_book=_is_default_book(book_dir),
    )
