"""Checking cited URLs against a built site folder (`manage.py check_links`).

Each URL is mapped to the file the site serves for it (`built_file`), and its
`#fragment` looked up among that page's ids (`html_ids`). Pure Python.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

# --- checking links against a built site ---------------------------------------------------

PAGE_MISSING = "page"
ANCHOR_MISSING = "anchor"
OUTSIDE_SITE = "outside"


@dataclass(frozen=True)
class BrokenLink:
    """A cited URL that the built site does not serve, or whose page lacks the anchor."""

    url: str
    kind: str  # PAGE_MISSING | ANCHOR_MISSING | OUTSIDE_SITE
    detail: str


class _IdCollector(HTMLParser):
    """Collects every `id` (and `<a name>`) of an HTML page: the targets of `#fragments`."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and (name == "id" or (name == "name" and tag == "a")):
                self.ids.add(value)


def html_ids(html_text: str) -> set[str]:
    """Return the ids a browser can scroll to in an HTML page."""
    collector = _IdCollector()
    collector.feed(html_text)
    collector.close()
    return collector.ids


def built_file(site_dir: Path, route: str) -> Path | None:
    """Return the file a static host serves for `route` (`/a/`, `/a.html`, `/a`), or None.

    `/a/` is `a/index.html`; `/a` is the file `a`, else `a.html`, else `a/index.html`
    (what GitHub Pages and Netlify do).
    """
    inner = unquote(route).lstrip("/")
    root = Path(site_dir).resolve()
    candidates = (
        [inner + "index.html"]
        if inner == "" or inner.endswith("/")
        else [inner, inner + ".html", inner + "/index.html"]
    )
    for candidate in candidates:
        path = (root / candidate).resolve()
        if path.is_file() and path.is_relative_to(root):
            return path
    return None


def check_urls(*, urls: Iterable[str], site_url: str, site_dir: Path) -> list[BrokenLink]:
    """Check each URL against a built site folder; return the broken ones, in order."""
    base = urlsplit(site_url.rstrip("/") + "/")
    ids_by_file: dict[Path, set[str]] = {}
    broken: list[BrokenLink] = []
    for url in dict.fromkeys(urls):
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != (base.scheme, base.netloc) or not (
            parts.path + "/"
        ).startswith(base.path):
            broken.append(BrokenLink(url, OUTSIDE_SITE, f"not under SITE_URL {site_url}"))
            continue
        route = "/" + parts.path[len(base.path) :]
        page = built_file(site_dir, route)
        if page is None:
            broken.append(BrokenLink(url, PAGE_MISSING, f"no built page for {unquote(route)}"))
            continue
        anchor = unquote(parts.fragment)
        if not anchor:
            continue
        if page not in ids_by_file:
            ids_by_file[page] = html_ids(page.read_text(encoding="utf-8", errors="replace"))
        if anchor not in ids_by_file[page]:
            relative = page.relative_to(Path(site_dir).resolve()).as_posix()
            broken.append(BrokenLink(url, ANCHOR_MISSING, f'{relative} has no id "{anchor}"'))
    return broken
