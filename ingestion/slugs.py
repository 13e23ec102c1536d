"""Heading ids: the `id` each static-site generator gives a heading, from its own source.

github-slugger (Docusaurus, Starlight), mdBook's `normalize_id`, Python-Markdown's `toc`
slugify (MkDocs), VitePress' `@mdit-vue/shared` slugify and Hugo's goldmark `autoid`,
plus the explicit `{#custom-id}` syntax and each generator's rule for repeated headings.
Used by `ingestion.sites`; pure Python.
"""

from __future__ import annotations

import functools
import re
import unicodedata

_CUSTOM_ID_RE = re.compile(r"^(?P<text>.*?)\s*\{#(?P<id>[A-Za-z0-9_:.-]+)\}$", re.DOTALL)


# --- heading ids ------------------------------------------------------------------------

# github-slugger (Docusaurus, Starlight/Astro's rehype-heading-ids): lowercase, keep
# letters, marks, decimal and letter numbers, connector punctuation (`_`), spaces and
# hyphen-minus; drop every other punctuation, symbol, separator and control character,
# except symbols Unicode counts as alphabetic (Ⓐ, 🄰). Spaces become `-`.
_SLUG_KEPT_CATEGORIES = frozenset({"Nd", "Nl", "Pc"})


@functools.lru_cache(maxsize=4096)
def _slug_keeps(char: str) -> bool:
    if char in " -":
        return True
    category = unicodedata.category(char)
    if category[0] in "LM" or category in _SLUG_KEPT_CATEGORIES:
        return True
    return category == "So" and "LETTER" in unicodedata.name(char, "")


def github_slug(text: str) -> str:
    """Return the github-slugger slug of a plain heading text (no duplicate suffix)."""
    return "".join(char for char in text.lower() if _slug_keeps(char)).replace(" ", "-")


def mdbook_id(text: str) -> str:
    """Return mdBook's `normalize_id` of a heading text (rust-lang/mdBook src/utils/mod.rs).

    Alphanumerics, `_` and `-` are kept and ASCII-lowercased (`Über` stays `Über`),
    whitespace becomes `-`, everything else goes.
    """
    out = []
    for char in text.strip().lstrip("#").strip():
        if char.isalnum() or char in "_-":
            out.append(char.lower() if char.isascii() else char)
        elif char.isspace():
            out.append("-")
    return "".join(out)


def python_markdown_slug(text: str, separator: str = "-", *, unicode: bool = False) -> str:
    """Return Python-Markdown's `toc.slugify` (MkDocs' default heading ids)."""
    if not unicode:
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(rf"[{re.escape(separator)}\s]+", separator, text)


_VITEPRESS_CONTROL_RE = re.compile(r"[\u0000-\u001f]")
_VITEPRESS_SPECIAL_RE = re.compile(r"[\s~`!@#$%^&*()\-_+=\[\]{}|\\;:\"'“”‘’<>,.?/]+")
_VITEPRESS_COMBINING_RE = re.compile(r"[\u0300-\u036f]")


def vitepress_slug(text: str) -> str:
    """Return VitePress' heading slug (`slugify` of @mdit-vue/shared, VitePress' default)."""
    text = unicodedata.normalize("NFKD", text)
    text = _VITEPRESS_COMBINING_RE.sub("", text)
    text = _VITEPRESS_CONTROL_RE.sub("", text)
    text = _VITEPRESS_SPECIAL_RE.sub("-", text)
    text = re.sub(r"-{2,}", "-", text).strip("-")
    text = re.sub(r"^(\d)", r"_\1", text)
    return text.lower()


def hugo_id(text: str) -> str:
    """Return Hugo's default goldmark heading id (`autoHeadingIDType = "github"`).

    From gohugoio/hugo markup/goldmark/autoid.go `sanitizeAnchorNameWithHook`: spaces
    and `-` become `-`, letters, digits and `_` are lowercased, the rest goes.
    """
    out = []
    for char in text.strip():
        if char in " -":
            out.append("-")
        elif (
            char == "_"
            or unicodedata.category(char)[0] == "L"
            or unicodedata.category(char) == "Nd"
        ):
            out.append(char.lower())
    return "".join(out)


def split_custom_id(text: str) -> tuple[str, str | None]:
    """Split `Title {#custom-id}` into ("Title", "custom-id"); (text, None) without one."""
    match = _CUSTOM_ID_RE.match(text)
    if match is None:
        return text, None
    return match["text"], match["id"]


def dash_unique(base: str, seen: dict[str, int]) -> str:
    """github-slugger, mdBook, Hugo and markdown-it-anchor: `x`, `x-1`, `x-2` …"""
    result = base
    while result in seen:
        seen[base] += 1
        result = f"{base}-{seen[base]}"
    seen[result] = 0
    return result


_IDCOUNT_RE = re.compile(r"^(.*)_([0-9]+)$")


def underscore_unique(base: str, seen: dict[str, int]) -> str:
    """Python-Markdown's `toc.unique`: `x`, `x_1`, `x_2` … (an empty id becomes `_1`)."""
    result = base
    if result in seen or not result:
        match = _IDCOUNT_RE.match(result)
        stem, count = (match[1], int(match[2])) if match else (result, 0)
        count += 1
        while f"{stem}_{count}" in seen:
            count += 1
        result = f"{stem}_{count}"
    seen[result] = 0
    return result
