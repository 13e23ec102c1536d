"""Reading one book page: bytes to text, Markdown/MDX to titled sections of plain blocks.

Pure functions, no Django and no I/O. The page is parsed with markdown-it-py (CommonMark
plus tables, front matter and `:::` admonitions), never with regexes over lines, so a
Python sample that starts with `import` inside a fenced block is never mistaken for an
MDX import. URLs and heading anchors follow the book's site generator (ingestion/sites.py;
Docusaurus 3 by default), so a citation links to the place a reader sees;
docs/ingestion.md ("How a page becomes chunks") explains the rules.
"""

from __future__ import annotations

import functools
import html
import re
import textwrap
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.container import container_plugin
from mdit_py_plugins.front_matter import front_matter_plugin

from .sites import (  # noqa: F401 - github_slug and strip_number_prefix are re-exported
    DocusaurusSite,
    Site,
    github_slug,
    split_custom_id,
    split_page_path,
    strip_number_prefix,
)

PAGE_BINARY_MESSAGE = "not a text page: it contains NUL bytes (binary file)"
PAGE_NOT_UTF8_MESSAGE = "not valid UTF-8: byte 0x{byte:02x} at offset {offset} cannot be decoded"
FRONT_MATTER_INVALID_MESSAGE = "front matter is not valid YAML: {error}"
FRONT_MATTER_NOT_MAPPING_MESSAGE = (
    "front matter must be a YAML mapping of keys to values, not {kind}"
)

BlockKind = Literal["paragraph", "code", "list", "table", "quote", "admonition", "heading"]

# Diagram sources render as pictures; their text retrieves nothing useful.
SKIPPED_FENCE_LANGUAGES = frozenset({"mermaid"})
# `:::note` … `:::`: Docusaurus' built-in admonition labels.
ADMONITION_LABELS = {
    "note": "Note",
    "tip": "Tip",
    "info": "Info",
    "warning": "Warning",
    "danger": "Danger",
    "caution": "Caution",
    "important": "Important",
    "success": "Success",
    "secondary": "Note",
}
MAX_HTML_REPARSE_DEPTH = 4


class PageError(Exception):
    """A page cannot be read or parsed (message says why, e.g. 'not valid UTF-8')."""


@dataclass(frozen=True)
class Block:
    """One piece of a section's text: a paragraph, a fenced code block, a whole list, ..."""

    kind: BlockKind
    text: str


@dataclass(frozen=True)
class Section:
    """The blocks under one heading; the top section (before any heading) has path ()."""

    heading_path: tuple[str, ...]
    anchor: str  # "" for the top section: its URL is the page URL itself
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class ParsedPage:
    """A page read and cut into sections, with its title and public URL."""

    path: str  # posix, relative to BOOK_DIR, as given
    title: str
    slug: str | None  # the front-matter `slug:` as written, None without one
    draft: bool  # front-matter `draft: true`: Docusaurus does not publish it
    url: str | None  # None when no site URL is configured
    sections: tuple[Section, ...]


# --- bytes to text ------------------------------------------------------------------


def decode_page(data: bytes) -> str:
    """Return a page's text: UTF-8 (a BOM is dropped), newlines normalised to \\n.

    Raises PageError for binary data (NUL bytes) or bytes that are not UTF-8.
    """
    if b"\x00" in data:
        raise PageError(PAGE_BINARY_MESSAGE)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PageError(
            PAGE_NOT_UTF8_MESSAGE.format(byte=data[exc.start], offset=exc.start)
        ) from exc
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --- heading anchors and URLs (the generator's rules, in ingestion/sites.py) -------------


def heading_anchor(text: str, site: Site | None = None) -> tuple[str, str]:
    """Return (clean heading text, anchor) for a heading's Markdown source.

    Inline Markdown (`code`, **bold**, links, inline HTML/JSX tags) is reduced to its
    text first; `## Title {#custom-id}` gives ("Title", "custom-id") where the generator
    honours it. The anchor is the first of its kind: parse_page numbers repeats. The
    default site is Docusaurus (github-slugger).
    """
    site = site or DocusaurusSite()
    plain = _inline_plain(_parser(mdx=True).parseInline(text)[0].children or []).strip()
    return site.heading_text(plain), site.heading_id(plain, {})


def doc_slug(*, path: str, front_matter: dict[str, Any]) -> str:
    """Return the Docusaurus route of a page inside the docs base, e.g. `/part-1/intro`."""
    return DocusaurusSite().doc_slug(path, front_matter)


def page_url(*, path: str, front_matter: dict, site_url: str, docs_prefix: str) -> str | None:
    """Return the Docusaurus URL of a page, or None when no site URL is configured."""
    return DocusaurusSite(site_url=site_url, docs_prefix=docs_prefix).page_url(path, front_matter)


def section_url(page_url_: str | None, anchor: str) -> str | None:
    """Return the URL of a section: the page URL plus `#anchor` ("" anchor: the page)."""
    if page_url_ is None:
        return None
    return f"{page_url_}#{quote(anchor, safe='-._~')}" if anchor else page_url_


# --- the parser ----------------------------------------------------------------------


def _admonition_params(params: str, _markup: str = "") -> bool:
    return re.match(r"\s*[A-Za-z]", params) is not None


@functools.cache
def _parser(*, mdx: bool) -> MarkdownIt:
    """Return the shared markdown-it parser (MDX has no indented code blocks)."""
    md = (
        MarkdownIt("commonmark", {"html": True})
        .enable(["table", "strikethrough"])
        .use(front_matter_plugin)
        .use(container_plugin, name="admonition", validate=_admonition_params)
    )
    if mdx:
        md.disable("code")
    return md


# --- inline text ---------------------------------------------------------------------

# A JSX/HTML tag, attributes in quotes or {braces} included.
_TAG_RE = re.compile(
    r"</?[A-Za-z][\w.:-]*(?:\s+(?:[^<>\"'{}]|\"[^\"]*\"|'[^']*'|\{(?:[^{}]|\{[^{}]*\})*\})*?)?\s*/?>"
)
_HTML_COMMENT_RE = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)
_MDX_COMMENT_RE = re.compile(r"\{/\*.*?\*/\}", re.DOTALL)
_DROPPED_ELEMENT_RE = re.compile(r"<(script|style)\b.*?</\1\s*>", re.DOTALL | re.IGNORECASE)
_WHITESPACE_RE = re.compile(r"[ \t]+")
_ATTRIBUTE_RE = re.compile(r"([\w-]+)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")


def _code_span(content: str) -> str:
    fence = "``" if "`" in content else "`"
    pad = " " if content.startswith("`") or content.endswith("`") else ""
    return f"{fence}{pad}{content}{pad}{fence}"


def _inline_plain(children: Sequence[Token]) -> str:
    """Reduce inline tokens to the text a reader sees (heading text, alt text)."""
    parts: list[str] = []
    for token in children:
        if token.type in {"text", "code_inline"}:
            parts.append(token.content)
        elif token.type in {"softbreak", "hardbreak"}:
            parts.append(" ")
        elif token.type == "image":
            parts.append(_inline_plain(token.children or []))
    return "".join(parts)


def _inline_text(children: Sequence[Token]) -> str:
    """Render a paragraph's inline tokens as readable text.

    Emphasis markers, link targets and HTML/JSX tags go; code spans keep their
    backticks; lines are joined, except before a line that opens in bold ("**Support
    Level**: Advanced"): such lines are a list written as lines, one statement each
    (`passages._LABEL_LINE`). Tags are removed from runs of plain text only, so a
    `Vec<T>` code span is never touched.
    """
    parts: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            text = _MDX_COMMENT_RE.sub("", "".join(run))
            parts.append(_TAG_RE.sub("", text))
            run.clear()

    for index, token in enumerate(children):
        kind = token.type
        if kind == "text":
            run.append(token.content)
        elif kind == "softbreak":
            following = next(
                (t.type for t in children[index + 1 :] if t.type != "text" or t.content), ""
            )
            run.append("\n" if following == "strong_open" else " ")
        elif kind == "hardbreak":
            run.append("\n")
        elif kind == "html_inline":
            if re.match(r"<br\s*/?>", token.content, re.IGNORECASE):
                run.append(" ")
        elif kind == "code_inline":
            flush()
            parts.append(_code_span(token.content))
        elif kind == "image":
            run.append(_inline_plain(token.children or []))
    flush()
    lines = (_WHITESPACE_RE.sub(" ", line).strip() for line in "".join(parts).split("\n"))
    return "\n".join(line for line in lines if line)


# --- blocks --------------------------------------------------------------------------

# MDX ESM: `import X from '…'`, `import '…'`, `export const …` at the top level of a page.
_ESM_RE = re.compile(
    r"^(?:import\s*(?:[\w*{]|['\"])|export\s+(?:const|let|var|function|default|class|async|\{|\*))"
)


@dataclass(frozen=True)
class _Heading:
    level: int
    text: str
    anchor: str


@dataclass
class _Context:
    """State shared while one page is read: its site, the ids taken so far, its parser."""

    md: MarkdownIt
    site: Site
    seen_ids: dict[str, int] = field(default_factory=dict)


def _closing_index(tokens: Sequence[Token], start: int) -> int:
    """Return the index just past the token that closes `tokens[start]`."""
    if tokens[start].nesting != 1:
        return start + 1
    depth = 0
    for index in range(start, len(tokens)):
        depth += tokens[index].nesting
        if depth == 0:
            return index + 1
    return len(tokens)


def _children_ranges(tokens: Sequence[Token], start: int, end: int) -> Iterator[tuple[int, int]]:
    """Yield (start, end) of each block directly inside tokens[start:end]."""
    index = start
    while index < end:
        stop = _closing_index(tokens, index)
        yield index, stop
        index = stop


def _fence_block(language: str, content: str, markup: str = "```") -> Block:
    body = content.rstrip("\n")
    while markup[0] == "`" and re.search(rf"^\s*{markup}", body, re.MULTILINE):
        markup += "`"
    return Block("code", f"{markup}{language}\n{body}\n{markup}")


def _indent(text: str, prefix: str, first: str | None = None) -> str:
    lines = text.split("\n")
    head = (first if first is not None else prefix) + lines[0]
    rest = [prefix + line if line else line for line in lines[1:]]
    return "\n".join([head, *rest])


def _admonition_label(info: str) -> str:
    params = info.strip()
    match = re.match(
        r"(?P<kind>[A-Za-z][\w-]*)\s*(?:\[(?P<bracket>[^\]]*)\])?(?P<rest>.*)$", params
    )
    if match is None:
        return "Note"
    rest = match["rest"].strip()
    title_attr = re.search(r"title=[\"']([^\"']*)[\"']", rest)
    title = match["bracket"] or (title_attr.group(1) if title_attr else rest.strip("{}"))
    return title.strip() or ADMONITION_LABELS.get(match["kind"].lower(), match["kind"].title())


def _visible_attributes(tag: str) -> str | None:
    """Text that a component shows from its attributes: a tab's label, a listing caption."""
    name_match = re.match(r"<([A-Za-z][\w.:-]*)", tag)
    if name_match is None:
        return None
    attributes = {key: a or b for key, a, b in _ATTRIBUTE_RE.findall(tag)}
    name = name_match.group(1)
    if name == "TabItem" and attributes.get("label"):
        return attributes["label"] + ":"
    if name == "Listing" and (attributes.get("caption") or attributes.get("number")):
        number = attributes.get("number")
        caption = attributes.get("caption", "")
        label = f"Listing {number}" if number else "Listing"
        return f"{label}: {caption}" if caption else label
    return None


# A fenced block written inside raw HTML/JSX, which markdown-it hands over unparsed.
_RAW_FENCE_RE = re.compile(
    r"^[ \t]*(?P<fence>`{3,}|~{3,})[^\n]*\n.*?^[ \t]*(?P=fence)[`~]*[ \t]*$", re.M | re.S
)


def _strip_markup(content: str) -> str:
    """Remove comments, scripts and tags (keeping what components show) from HTML/JSX."""
    content = _HTML_COMMENT_RE.sub("", content)
    content = _MDX_COMMENT_RE.sub("", content)
    content = _DROPPED_ELEMENT_RE.sub("", content)

    def replace(match: re.Match[str]) -> str:
        visible = _visible_attributes(match.group(0))
        return f"\n\n{visible}\n\n" if visible else ""

    return html.unescape(_TAG_RE.sub(replace, content))


def _html_block_markdown(content: str) -> str:
    """Return the Markdown left in an HTML/JSX block once comments and tags are gone.

    Fenced code inside the block (a sample in a `<TabItem>` written without blank
    lines) is left exactly as written: `make_shared<Node>()` is code, not a tag.
    """
    parts: list[str] = []
    last = 0
    for match in _RAW_FENCE_RE.finditer(content):
        parts.append(_strip_markup(content[last : match.start()]))
        parts.append(match.group(0))
        last = match.end()
    parts.append(_strip_markup(content[last:]))
    return textwrap.dedent("".join(parts)).strip()


class _BlockReader:
    """Turns a markdown-it token stream into Blocks and (top-level) _Heading markers."""

    def __init__(self, context: _Context) -> None:
        self.context = context

    def read(
        self, tokens: Sequence[Token], start: int, end: int, *, top: bool, depth: int = 0
    ) -> list[Block | _Heading]:
        """Read tokens[start:end]; headings split sections only when `top`."""
        items: list[Block | _Heading] = []
        for first, stop in _children_ranges(tokens, start, end):
            items.extend(self._read_one(tokens, first, stop, top=top, depth=depth))
        return items

    def blocks(self, tokens: Sequence[Token], start: int, end: int, depth: int) -> list[Block]:
        """Read nested content: every heading becomes a heading Block."""
        return [
            item
            for item in self.read(tokens, start, end, top=False, depth=depth)
            if isinstance(item, Block)
        ]

    def _read_one(
        self, tokens: Sequence[Token], first: int, stop: int, *, top: bool, depth: int
    ) -> list[Block | _Heading]:
        token = tokens[first]
        kind = token.type
        if kind == "heading_open":
            return [self._heading(token, tokens[first + 1], top=top)]
        if kind == "paragraph_open":
            inline = tokens[first + 1]
            if top and token.level == 0 and _ESM_RE.match(inline.content):
                return []  # MDX import/export: code for the site, not prose
            text = _inline_text(inline.children or [])
            return [Block("paragraph", text)] if text else []
        if kind in {"fence", "code_block"}:
            language = token.info.strip().split(maxsplit=1)[0] if token.info.strip() else ""
            if language.lower() in SKIPPED_FENCE_LANGUAGES:
                return []
            markup = token.markup if kind == "fence" and token.markup[0] == "`" else "```"
            return [_fence_block(language, token.content, markup)]
        if kind in {"bullet_list_open", "ordered_list_open"}:
            text = self._list(tokens, first, stop, depth)
            return [Block("list", text)] if text else []
        if kind == "table_open":
            return [Block("table", self._table(tokens, first, stop))]
        if kind == "blockquote_open":
            return self._wrapped(tokens, first, stop, depth, kind="quote", label=None)
        if kind == "container_admonition_open":
            label = _admonition_label(token.info)
            return self._wrapped(tokens, first, stop, depth, kind="admonition", label=label)
        if kind == "html_block":
            return self._html_block(token.content, top=top, depth=depth)
        if token.nesting == 1:  # an unknown container: keep what is inside
            return self.read(tokens, first + 1, stop - 1, top=False, depth=depth)
        return []  # hr, front_matter (read separately), stray closers

    def _heading(self, token: Token, inline: Token, *, top: bool) -> Block | _Heading:
        plain = _inline_plain(inline.children or []).strip()
        site = self.context.site
        text, anchor = site.heading_text(plain), site.heading_id(plain, self.context.seen_ids)
        level = int(token.tag[1])
        if top:
            return _Heading(level=level, text=text, anchor=anchor)
        return Block("heading", f"{'#' * level} {text}")

    def _list(self, tokens: Sequence[Token], start: int, stop: int, depth: int) -> str:
        opener = tokens[start]
        ordered = opener.type == "ordered_list_open"
        number = int(opener.attrGet("start") or 1) if ordered else 0
        items: list[str] = []
        for first, end in _children_ranges(tokens, start + 1, stop - 1):
            if tokens[first].type != "list_item_open":
                continue
            marker = f"{number}." if ordered else "-"
            number += 1
            inner = self.blocks(tokens, first + 1, end - 1, depth)
            body = "\n".join(block.text for block in inner) or ""
            items.append(_indent(body, " " * (len(marker) + 1), first=f"{marker} "))
        return "\n".join(items)

    def _table(self, tokens: Sequence[Token], start: int, stop: int) -> str:
        rows: list[list[str]] = []
        header_rows = 0
        for index in range(start, stop):
            token = tokens[index]
            if token.type == "tr_open":
                rows.append([])
            elif token.type == "inline" and rows:
                rows[-1].append(
                    _inline_text(token.children or []).replace("|", "\\|").replace("\n", " ")
                )
            elif token.type == "thead_close":
                header_rows = len(rows)
        lines = ["| " + " | ".join(row) + " |" for row in rows]
        if header_rows:
            width = len(rows[0])
            lines.insert(header_rows, "|" + " --- |" * width)
        return "\n".join(lines)

    def _wrapped(
        self,
        tokens: Sequence[Token],
        start: int,
        stop: int,
        depth: int,
        *,
        kind: BlockKind,
        label: str | None,
    ) -> list[Block | _Heading]:
        """Flatten a quote or admonition: its prose becomes `kind` blocks, code stays code.

        Keeping inner code and tables as their own blocks lets the chunker split a long
        quote between them instead of through a fenced block.
        """
        out: list[Block | _Heading] = []
        pending_label = label
        for block in self.blocks(tokens, start + 1, stop - 1, depth):
            if block.kind in {"paragraph", "heading", "quote", "admonition"}:
                text = block.text
                if pending_label is not None:
                    text = f"{pending_label}: {text}"
                    pending_label = None
                if kind == "quote":
                    text = _indent(text, "> ")
                out.append(Block("heading" if block.kind == "heading" else kind, text))
            else:
                if pending_label is not None:
                    out.append(Block(kind, f"{pending_label}:"))
                    pending_label = None
                out.append(block)
        if pending_label is not None and out:
            out.insert(0, Block(kind, f"{pending_label}:"))
        return out

    def _html_block(self, content: str, *, top: bool, depth: int) -> list[Block | _Heading]:
        remainder = _html_block_markdown(content)
        if not remainder:
            return []
        if depth >= MAX_HTML_REPARSE_DEPTH:
            return [Block("paragraph", _WHITESPACE_RE.sub(" ", remainder))]
        # What is left is Markdown written inside a component (<TabItem>…</TabItem>).
        tokens = self.context.md.parse(remainder)
        return self.read(tokens, 0, len(tokens), top=top, depth=depth + 1)


# --- the page ------------------------------------------------------------------------


def _front_matter(tokens: Sequence[Token]) -> dict[str, Any]:
    if not tokens or tokens[0].type != "front_matter":
        return {}
    try:
        data = yaml.safe_load(tokens[0].content)
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise PageError(FRONT_MATTER_INVALID_MESSAGE.format(error=reason)) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PageError(FRONT_MATTER_NOT_MAPPING_MESSAGE.format(kind=type(data).__name__))
    return data


# Hugo's TOML front matter: `+++` lines around it, at the very top of the page.
_TOML_FRONT_MATTER_RE = re.compile(
    r"\A\+\+\+[ \t]*\n(?P<body>.*?)^\+\+\+[ \t]*(?:\n|\Z)", re.S | re.M
)


def _toml_front_matter(text: str) -> tuple[dict[str, Any] | None, str]:
    """Split `+++` TOML front matter (Hugo) off a page: (mapping or None, the rest)."""
    match = _TOML_FRONT_MATTER_RE.match(text)
    if match is None:
        return None, text
    try:
        data = tomllib.loads(match["body"])
    except tomllib.TOMLDecodeError as exc:
        raise PageError(FRONT_MATTER_INVALID_MESSAGE.format(error=exc)) from exc
    # Blank lines keep the body's line numbers; nothing of the TOML is read as prose.
    return data, "\n" * match["body"].count("\n") + "\n\n" + text[match.end() :]


def humanize_filename(path: str) -> str:
    """Return a title made from a file name: `02-getting_started.md` -> 'Getting started'."""
    directory, stem = split_page_path(path)
    if stem.lower() in {"index", "readme", "_index"} and directory:
        stem = directory.rsplit("/", 1)[-1]
    words = re.sub(r"[-_\s]+", " ", strip_number_prefix(stem)).strip()
    return (words[:1].upper() + words[1:]) if words else stem


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in {"true", "yes"})


def _page_title(
    path: str, front_matter: dict[str, Any], items: Sequence[Block | _Heading]
) -> tuple[str, int | None]:
    """Return the page title and the index of the heading that acts as title (if any)."""
    headings = [(index, item) for index, item in enumerate(items) if isinstance(item, _Heading)]
    title_index: int | None = None
    title_heading: _Heading | None = None
    if headings and (headings[0][1].level == 1 or headings[0][0] == 0):
        title_index, title_heading = headings[0]
    front_title = front_matter.get("title")
    if front_title not in (None, "") and str(front_title).strip():
        return str(front_title).strip(), title_index
    if title_heading is not None and title_heading.text:
        return title_heading.text, title_index
    first_h1 = next((item.text for _, item in headings if item.level == 1 and item.text), None)
    return first_h1 or humanize_filename(path), title_index


def parse_page(
    *, path: str, text: str, site_url: str, docs_prefix: str = "/docs", site: Site | None = None
) -> ParsedPage:
    """Parse a page's text into title, URL and sections.

    `site` gives the page URL and heading-id rules of the book's generator; without it
    they are Docusaurus' under `site_url` and `docs_prefix`.

    Title: front-matter `title:`, else the page's opening heading (an `#` heading, or any
    heading the page starts with), else the first `#` heading, else the file name. The
    opening heading is the page's title: it is not part of the sections' heading paths.

    Raises PageError when the front matter is not valid YAML or not a mapping.
    """
    site = site or DocusaurusSite(site_url=site_url, docs_prefix=docs_prefix)
    context = _Context(md=_parser(mdx=path.lower().endswith(".mdx")), site=site)
    toml_front_matter, text = _toml_front_matter(text)
    tokens = context.md.parse(text)
    front_matter = toml_front_matter if toml_front_matter is not None else _front_matter(tokens)
    if site.custom_ids and site.custom_ids_count:
        # Python-Markdown's toc collects every explicit id first: a generated id never
        # takes one that a later `{#id}` heading claims.
        for index, token in enumerate(tokens[:-1]):
            if token.type == "heading_open":
                plain = _inline_plain(tokens[index + 1].children or []).strip()
                custom = split_custom_id(plain)[1]
                if custom is not None:
                    context.seen_ids.setdefault(custom, 0)
    items = _BlockReader(context).read(tokens, 0, len(tokens), top=True)

    title, title_index = _page_title(path, front_matter, items)
    sections: list[Section] = []
    stack: list[_Heading] = []
    anchor = ""
    blocks: list[Block] = []

    def close() -> None:
        sections.append(Section(tuple(h.text for h in stack), anchor, tuple(blocks)))

    for index, item in enumerate(items):
        if isinstance(item, Block):
            blocks.append(item)
        elif index == title_index:
            if item.text != title:  # e.g. front matter "Chapter 7", page heading "Chapter 4"
                blocks.append(Block("heading", f"{'#' * item.level} {item.text}"))
        else:
            close()
            while stack and stack[-1].level >= item.level:
                stack.pop()
            stack.append(item)
            anchor, blocks = item.anchor, []
    close()

    front_slug = front_matter.get("slug")
    return ParsedPage(
        path=path,
        title=title,
        slug=str(front_slug) if front_slug not in (None, "") else None,
        draft=_is_true(front_matter.get("draft")),
        url=site.page_url(path, front_matter),
        sections=tuple(sections),
    )
