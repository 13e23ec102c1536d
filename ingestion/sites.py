"""Static-site generators: which one publishes the book, and its URL and heading-id rules.

A citation must open the page and heading a reader sees, and every generator builds
both differently: mdBook writes `ch04-01-what-is-ownership.html`, MkDocs
`ch04-01-what-is-ownership/`, Docusaurus `/docs/...` without an extension. One class per
generator answers three questions, each written from that project's own source:

- `page_url(path, front_matter)`: the published URL of a page (None without SITE_URL);
- `heading_id(text, seen)`: the `id` the generator gives a heading, repeats included;
- `is_page(rel_path)`: whether a Markdown file becomes a page at all (mdBook builds
  only the chapters SUMMARY.md lists; Docusaurus skips `_partials`).

`detect_generator` reads the book folder (and the folders above it, where each
generator keeps its configuration) for `SITE_GENERATOR=auto`. The heading-id rules live
in `ingestion.slugs`, the check of cited URLs against a built site in
`ingestion.linkcheck`. Pure Python: files are read, no Django. docs/ingestion.md
("Where a chunk links to") explains the rules.
"""

from __future__ import annotations

import json
import posixpath
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar
from urllib.parse import quote

import yaml

from .linkcheck import (  # noqa: F401 - re-exported: the link check's public names
    ANCHOR_MISSING,
    OUTSIDE_SITE,
    PAGE_MISSING,
    BrokenLink,
    built_file,
    check_urls,
    html_ids,
)
from .slugs import (  # noqa: F401 - re-exported: each generator's heading-id rule
    dash_unique,
    github_slug,
    hugo_id,
    mdbook_id,
    python_markdown_slug,
    split_custom_id,
    underscore_unique,
    vitepress_slug,
)

GENERATORS = ("docusaurus", "mdbook", "mkdocs", "vitepress", "starlight", "hugo", "plain")
GENERATOR_CHOICES = frozenset({"auto", *GENERATORS})
# With nothing to detect, a book keeps the rules ragsite always used: Docusaurus'.
FALLBACK_GENERATOR = "docusaurus"
PAGE_EXTENSIONS = (".mdx", ".md", ".markdown")
_URL_SAFE = "/-._~!$&'()*+,;=:@"


# --- paths -------------------------------------------------------------------------------


def split_page_path(path: str) -> tuple[str, str]:
    """Return (directory, file name without its page extension) of a posix page path."""
    directory, filename = posixpath.split(path.strip("/"))
    stem = filename
    for extension in PAGE_EXTENSIONS:
        if filename.lower().endswith(extension):
            stem = filename[: -len(extension)]
            break
    return directory, stem


def _front(front_matter: Mapping[str, Any], key: str) -> str | None:
    value = front_matter.get(key)
    if value in (None, "") or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text or None


_DATE_OR_VERSION_PREFIX_RE = re.compile(
    r"^(?:(?:\d{2}|\d{4})[-_.]\d{2}(?:[-_.](?:\d{2}|\d{4}))?.*|\d+[-_.]\d+.*)$"
)
_NUMBER_PREFIX_RE = re.compile(r"^\d+\s*[-_.]+\s*(?P<rest>.*)$")


def strip_number_prefix(name: str) -> str:
    """Drop a Docusaurus ordering prefix: `01-intro` -> `intro` (dates/versions are kept)."""
    if _DATE_OR_VERSION_PREFIX_RE.match(name):
        return name
    match = _NUMBER_PREFIX_RE.match(name)
    return match["rest"] if match else name


def _normalise_prefix(docs_prefix: str) -> str:
    inner = (docs_prefix or "").strip().strip("/")
    return f"/{inner}" if inner else ""


# --- generators --------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    """How one generator publishes a book: page URLs, heading ids, which files are pages.

    `options` holds what the generator's own configuration file says (e.g. MkDocs'
    `use_directory_urls`), read by `site_for`.
    """

    name: ClassVar[str] = "plain"
    custom_ids: ClassVar[bool] = False  # `## Title {#id}` sets the id
    custom_ids_count: ClassVar[bool] = False  # an explicit id takes part in repeat numbering

    site_url: str = ""
    docs_prefix: str = ""
    book_dir: Path | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    detected_from: str = ""  # the marker file or folder that chose the generator
    chosen_by: str = "setting"  # "setting" (SITE_GENERATOR) | "detected" | "default"

    # -- the three rules --
    def page_route(self, path: str, front_matter: Mapping[str, Any]) -> str:
        """Return the page's path under SITE_URL, starting with `/`."""
        return "/" + path.strip("/")

    def page_url(self, path: str, front_matter: Mapping[str, Any]) -> str | None:
        """Return the public URL of a page, or None when no site URL is configured."""
        if not self.site_url:
            return None
        route = self.page_route(path, front_matter or {})
        return self.site_url.rstrip("/") + quote(route, safe=_URL_SAFE)

    def slug(self, text: str) -> str:
        """Return the generator's id of a heading text, before repeats are numbered."""
        return github_slug(text)

    def unique(self, base: str, seen: dict[str, int]) -> str:
        """Number a repeated id the generator's way and remember it in `seen`."""
        return dash_unique(base, seen)

    def heading_text(self, text: str) -> str:
        """Return the heading as a reader sees it (an honoured `{#id}` is not shown)."""
        return split_custom_id(text)[0] if self.custom_ids else text

    def heading_id(self, text: str, seen: dict[str, int]) -> str:
        """Return the `id` of a heading whose plain text is `text`; `seen` is per page."""
        if self.custom_ids:
            clean, custom = split_custom_id(text)
            if custom is not None:
                if self.custom_ids_count:
                    seen.setdefault(custom, 0)
                return custom
            text = clean
        return self.unique(self.slug(text), seen)

    def is_page(self, rel_path: str) -> bool:
        """True when the generator publishes this Markdown file as a page."""
        return True

    # -- reporting --
    @property
    def identity(self) -> str:
        """A short string that changes whenever this site's URLs or ids would change."""
        # The title and mdBook's chapter list shape no URL (the chapters decide is_page).
        shaping = sorted((k, v) for k, v in self.options.items() if k not in {"title", "chapters"})
        options = ",".join(f"{k}={v}" for k, v in shaping)
        return f"{self.name}({options})" if options else self.name

    def describe(self) -> str:
        """One line for the ingest summary: `mdbook (detected from SUMMARY.md)`."""
        how = {
            "detected": f"detected from {self.detected_from}",
            "default": "no generator files found; the default",
        }.get(self.chosen_by, "SITE_GENERATOR")
        return f"{self.name} ({how})"

    @property
    def title(self) -> str:
        """The book's title from the generator's configuration, "" when it names none."""
        return str(self.options.get("title") or "")


class PlainSite(Site):
    """A folder of Markdown served as files (GitHub, a file server): the path as is."""

    name = "plain"


class DocusaurusSite(Site):
    """Docusaurus 3 docs plugin: `/docs/<path without extension>`, github-slugger ids.

    docusaurus-plugin-content-docs: `index`/`README`/`<folder>/<folder>` pages are their
    folder, `slug:` (absolute or relative) and `id:` replace the file name, number
    prefixes are stripped; its default `exclude` drops `_`-prefixed files and folders.
    """

    name = "docusaurus"
    custom_ids = True

    def doc_slug(self, path: str, front_matter: Mapping[str, Any]) -> str:
        """Return the route of a page inside the docs base, e.g. `/part-1/intro`."""
        directory, stem = split_page_path(path)
        front_slug = _front(front_matter, "slug")
        if front_slug is not None and front_slug.startswith("/"):
            return front_slug
        stripped_dir = "/".join(strip_number_prefix(p) for p in directory.split("/") if p)
        dir_slug = f"/{stripped_dir}/" if stripped_dir else "/"
        parent = directory.rsplit("/", 1)[-1].lower() if directory else ""
        if front_slug is None and stem.lower() in {"index", "readme", parent}:
            return dir_slug
        base = front_slug or _front(front_matter, "id") or strip_number_prefix(stem)
        # Resolved like a relative link, as Docusaurus' resolvePathname: `../x` climbs.
        resolved = posixpath.normpath(posixpath.join(dir_slug, base))
        return resolved + "/" if base.endswith("/") and resolved != "/" else resolved

    def page_route(self, path: str, front_matter: Mapping[str, Any]) -> str:
        return _normalise_prefix(self.docs_prefix) + self.doc_slug(path, front_matter)

    def is_page(self, rel_path: str) -> bool:
        parts = PurePosixPath(rel_path).parts
        if any(part.startswith("_") for part in parts):
            return False
        return "__tests__" not in parts and ".test." not in parts[-1]


class MdBookSite(Site):
    """mdBook: `<page>.html`, `README.md` -> `index.html`, ids by `normalize_id`.

    Only the chapters SUMMARY.md links to are built (src/book/summary.rs); SUMMARY.md
    itself is the table of contents, not a page. Heading attributes (`{#id}`) are
    supported (pulldown-cmark's ENABLE_HEADING_ATTRIBUTES).
    """

    name = "mdbook"
    custom_ids = True

    def page_route(self, path: str, front_matter: Mapping[str, Any]) -> str:
        directory, stem = split_page_path(path)
        if stem == "README":  # the `index` preprocessor renames README.md chapters
            stem = "index"
        return "/" + posixpath.join(directory, stem + ".html")

    def slug(self, text: str) -> str:
        return mdbook_id(text)

    def is_page(self, rel_path: str) -> bool:
        if rel_path == "SUMMARY.md":
            return False
        chapters = self.options.get("chapters")
        return chapters is None or rel_path in chapters


class MkDocsSite(Site):
    """MkDocs: directory URLs (`use_directory_urls`, default true), Python-Markdown ids.

    mkdocs/structure/files.py: `foo.md` -> `foo/` (or `foo.html`), `index.md` and
    `README.md` -> their folder, a README beside an index.md is not built; `.`-prefixed
    files and the top-level `templates/` are excluded. Ids come from the `toc`
    extension's `slugify` with `_1`, `_2` for repeats; `{#id}` needs `attr_list`.
    """

    name = "mkdocs"

    @property
    def custom_ids(self) -> bool:  # type: ignore[override]
        return bool(self.options.get("attr_list"))

    custom_ids_count = True

    def page_route(self, path: str, front_matter: Mapping[str, Any]) -> str:
        directory, stem = split_page_path(path)
        if stem == "README":
            stem = "index"
        directory_urls = self.options.get("use_directory_urls", True)
        if stem == "index":
            return (
                "/"
                + (f"{directory}/" if directory else "")
                + ("" if directory_urls else "index.html")
            )
        if directory_urls:
            return "/" + posixpath.join(directory, stem) + "/"
        return "/" + posixpath.join(directory, stem + ".html")

    def slug(self, text: str) -> str:
        separator = str(self.options.get("toc_separator", "-"))
        return python_markdown_slug(text, separator, unicode=bool(self.options.get("toc_unicode")))

    def unique(self, base: str, seen: dict[str, int]) -> str:
        return underscore_unique(base, seen)

    def is_page(self, rel_path: str) -> bool:
        if rel_path.startswith("templates/"):
            return False
        directory, stem = split_page_path(rel_path)
        if stem == "README" and self.book_dir is not None:
            folder = self.book_dir / directory
            if any((folder / f"index{ext}").is_file() for ext in (".md", ".markdown")):
                return False
        return True


class VitePressSite(Site):
    """VitePress: `<page>.html`, or `<page>` with `cleanUrls: true`; `index.md` is its folder.

    Heading ids are @mdit-vue/shared's `slugify` (not github-slugger: `_` and most
    punctuation become `-`, a leading digit gets `_`), repeats `-1`, `-2` from
    markdown-it-anchor; `## Title {#id}` sets an id.
    """

    name = "vitepress"
    custom_ids = True

    def page_route(self, path: str, front_matter: Mapping[str, Any]) -> str:
        directory, stem = split_page_path(path)
        if stem == "index":
            return "/" + (f"{directory}/" if directory else "")
        suffix = "" if self.options.get("clean_urls") else ".html"
        return "/" + posixpath.join(directory, stem) + suffix

    def slug(self, text: str) -> str:
        return vitepress_slug(text)

    def is_page(self, rel_path: str) -> bool:
        parts = PurePosixPath(rel_path).parts
        return "node_modules" not in parts and parts[0] != "public"


class StarlightSite(Site):
    """Starlight (Astro): `/<slugified path>/`, github-slugger ids.

    Astro's content collections slug every path segment with github-slugger, drop a
    trailing `index`, honour a front-matter `slug:` and skip `_`-prefixed files and
    folders; Starlight serves pages with a trailing slash.
    """

    name = "starlight"

    def page_route(self, path: str, front_matter: Mapping[str, Any]) -> str:
        front_slug = _front(front_matter, "slug")
        if front_slug is not None:
            inner = front_slug.strip("/")
            return f"/{inner}/" if inner else "/"
        directory, stem = split_page_path(path)
        segments = [github_slug(part) for part in (*directory.split("/"), stem) if part]
        if segments and segments[-1] == "index":
            segments.pop()
        return "/" + "".join(f"{segment}/" for segment in segments)

    def is_page(self, rel_path: str) -> bool:
        return not any(part.startswith("_") for part in PurePosixPath(rel_path).parts)


class HugoSite(Site):
    """Hugo: pretty URLs (`/section/page/`), `_index.md` and bundles' `index.md` are folders.

    Front matter `url:` replaces the whole path, `slug:` the last segment; paths are
    lowercased unless `disablePathToLower`; `uglyURLs` gives `/section/page.html`. Ids
    are goldmark's `github` auto ids, repeats `-1`, `-2`; `## Title {#id}` sets one.
    """

    name = "hugo"
    custom_ids = True

    def page_route(self, path: str, front_matter: Mapping[str, Any]) -> str:
        url = _front(front_matter, "url")
        if url is not None:
            return url if url.startswith("/") else "/" + url
        directory, stem = split_page_path(path)
        segments = [part.replace(" ", "-") for part in directory.split("/") if part]
        slug = _front(front_matter, "slug")
        is_folder = stem in {"_index", "index"}
        if slug is not None:
            if is_folder and segments:
                segments[-1] = slug
            elif not is_folder:
                stem = slug
        route = "/" + "".join(f"{segment}/" for segment in segments)
        if not is_folder:
            name = stem.replace(" ", "-")
            route += f"{name}.html" if self.options.get("ugly_urls") else f"{name}/"
        return route if self.options.get("disable_path_to_lower") else route.lower()

    def slug(self, text: str) -> str:
        return hugo_id(text) or "heading"


SITE_CLASSES: dict[str, type[Site]] = {
    cls.name: cls
    for cls in (
        DocusaurusSite,
        MdBookSite,
        MkDocsSite,
        VitePressSite,
        StarlightSite,
        HugoSite,
        PlainSite,
    )
}


# --- detection ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Detection:
    """What `detect_generator` found: the generator and the marker that decided it."""

    generator: str
    marker: Path | None  # None: nothing found, the fallback applies


_JS_EXTENSIONS = ("js", "ts", "mjs", "cjs", "mts", "cts")
# (generator, file or folder names, how many folders above BOOK_DIR to look)
_MARKERS: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("docusaurus", tuple(f"docusaurus.config.{ext}" for ext in _JS_EXTENSIONS), 2),
    ("mdbook", ("book.toml",), 1),
    ("mdbook", ("SUMMARY.md",), 0),
    ("mkdocs", ("mkdocs.yml", "mkdocs.yaml"), 1),
    ("vitepress", (".vitepress",), 1),
    ("hugo", ("hugo.toml", "hugo.yaml", "hugo.yml", "hugo.json"), 1),
    ("hugo", ("config.toml",), 1),
    # src/content/docs -> the Astro project is three folders up.
    ("starlight", tuple(f"astro.config.{ext}" for ext in _JS_EXTENSIONS), 3),
)


def _is_hugo_config(path: Path) -> bool:
    """A bare `config.toml` is Hugo's only when it sets a baseURL."""
    try:
        return "baseurl" in path.read_text(encoding="utf-8", errors="replace").lower()
    except OSError:
        return False


def detect_generator(book_dir: Path) -> Detection:
    """Return the generator whose marker file is nearest to `book_dir` (itself, then up).

    Markers: `docusaurus.config.*`; `book.toml` or `SUMMARY.md`; `mkdocs.yml`;
    `.vitepress/`; `hugo.toml` or a `config.toml` with a baseURL; `astro.config.*`.
    At the same distance the order above decides. Nothing found: Docusaurus.
    """
    folders = [Path(book_dir).resolve()]
    folders.extend(folders[0].parents)
    best: tuple[int, int, str, Path] | None = None
    for order, (generator, names, depth) in enumerate(_MARKERS):
        for level, folder in enumerate(folders[: depth + 1]):
            for name in names:
                candidate = folder / name
                if not candidate.exists():
                    continue
                if name == "config.toml" and not _is_hugo_config(candidate):
                    continue
                if best is None or (level, order) < best[:2]:
                    best = (level, order, generator, candidate)
    if best is None:
        return Detection(FALLBACK_GENERATOR, None)
    return Detection(best[2], best[3])


# --- reading each generator's configuration -----------------------------------------------


class _LenientLoader(yaml.SafeLoader):
    """YAML loader for mkdocs.yml: `!!python/name:…`, `!ENV` and other tags become strings."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return f"{suffix}{loader.construct_scalar(node)}"
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)


_LenientLoader.add_multi_constructor("", _tagged)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _find_up(book_dir: Path, names: Iterable[str], depth: int) -> Path | None:
    folders = [Path(book_dir).resolve()]
    folders.extend(folders[0].parents)
    for folder in folders[: depth + 1]:
        for name in names:
            if (folder / name).exists():
                return folder / name
    return None


def _summary_chapters(summary: Path) -> tuple[frozenset[str], str]:
    """Return (chapter paths SUMMARY.md links to, its `# Title`), read with markdown-it."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(_read_text(summary))
    chapters: set[str] = set()
    title = ""
    for index, token in enumerate(tokens):
        if token.type == "heading_open" and token.tag == "h1" and not title:
            title = tokens[index + 1].content.strip()
        for child in token.children or []:
            href = (child.attrGet("href") or "") if child.type == "link_open" else ""
            if href and "://" not in href:
                target = posixpath.normpath(href.split("#", 1)[0].removeprefix("./"))
                chapters.add(target.replace("%20", " "))
    return frozenset(chapters), title


def _quoted_value(text: str, key: str) -> str:
    match = re.search(rf"\b{key}\s*:\s*([\"'`])(?P<value>.+?)\1", text)
    return match["value"].strip() if match else ""


def _mdbook_options(book_dir: Path) -> dict[str, Any]:
    options: dict[str, Any] = {}
    summary = Path(book_dir) / "SUMMARY.md"
    if summary.is_file():
        options["chapters"], options["title"] = _summary_chapters(summary)
    book_toml = _find_up(book_dir, ("book.toml",), 1)
    if book_toml is not None:
        try:
            title = tomllib.loads(_read_text(book_toml)).get("book", {}).get("title")
        except tomllib.TOMLDecodeError:
            title = None
        if title:
            options["title"] = str(title)
    return options


def _mkdocs_options(book_dir: Path) -> dict[str, Any]:
    config_path = _find_up(book_dir, ("mkdocs.yml", "mkdocs.yaml"), 1)
    if config_path is None:
        return {}
    try:
        config = yaml.load(_read_text(config_path), Loader=_LenientLoader)  # noqa: S506
    except yaml.YAMLError:
        return {}
    if not isinstance(config, dict):
        return {}
    options: dict[str, Any] = {
        "use_directory_urls": config.get("use_directory_urls", True) is not False
    }
    if config.get("site_name"):
        options["title"] = str(config["site_name"])
    extensions = config.get("markdown_extensions") or []
    for item in extensions if isinstance(extensions, list) else [extensions]:
        name, settings = next(iter(item.items())) if isinstance(item, dict) else (item, None)
        if name == "attr_list":
            options["attr_list"] = True
        if name == "toc" and isinstance(settings, dict):
            if "separator" in settings:
                options["toc_separator"] = str(settings["separator"])
            if str(settings.get("slugify", "")).endswith("slugify_unicode"):
                options["toc_unicode"] = True
    return options


def _vitepress_options(book_dir: Path) -> dict[str, Any]:
    folder = _find_up(book_dir, (".vitepress",), 1)
    if folder is None:
        return {}
    text = "".join(_read_text(p) for p in sorted(folder.glob("config.*")) if p.is_file())
    options: dict[str, Any] = {
        "clean_urls": re.search(r"\bcleanUrls\s*:\s*true\b", text) is not None
    }
    if title := _quoted_value(text, "title"):
        options["title"] = title
    return options


def _hugo_options(book_dir: Path) -> dict[str, Any]:
    names = ("hugo.toml", "config.toml", "hugo.yaml", "hugo.yml", "hugo.json")
    config_path = _find_up(book_dir, names, 1)
    if config_path is None:
        return {}
    text = _read_text(config_path)
    try:
        if config_path.suffix == ".toml":
            config = tomllib.loads(text)
        elif config_path.suffix == ".json":
            config = json.loads(text)
        else:
            config = yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, yaml.YAMLError):
        return {}
    if not isinstance(config, dict):
        return {}
    lowered = {str(k).lower(): v for k, v in config.items()}
    options: dict[str, Any] = {}
    if lowered.get("uglyurls") is True:
        options["ugly_urls"] = True
    if lowered.get("disablepathtolower") is True:
        options["disable_path_to_lower"] = True
    if lowered.get("title"):
        options["title"] = str(lowered["title"])
    return options


def _js_title_options(book_dir: Path, names: tuple[str, ...], depth: int) -> dict[str, Any]:
    config_path = _find_up(book_dir, names, depth)
    title = _quoted_value(_read_text(config_path), "title") if config_path else ""
    return {"title": title} if title else {}


def _options(generator: str, book_dir: Path) -> dict[str, Any]:
    if generator == "mdbook":
        return _mdbook_options(book_dir)
    if generator == "mkdocs":
        return _mkdocs_options(book_dir)
    if generator == "vitepress":
        return _vitepress_options(book_dir)
    if generator == "hugo":
        return _hugo_options(book_dir)
    if generator == "docusaurus":
        names = tuple(f"docusaurus.config.{ext}" for ext in _JS_EXTENSIONS)
        return _js_title_options(book_dir, names, 2)
    if generator == "starlight":
        names = tuple(f"astro.config.{ext}" for ext in _JS_EXTENSIONS)
        return _js_title_options(book_dir, names, 3)
    return {}


def site_for(
    *, book_dir: Path | None, generator: str = "auto", site_url: str = "", docs_prefix: str = ""
) -> Site:
    """Return the Site of a book: `generator` (or the detected one for "auto").

    The generator's configuration (mkdocs.yml, book.toml and SUMMARY.md, .vitepress/,
    hugo.toml, …) is read for the options that change URLs and ids.

    Raises ValueError for a generator name that is not one of GENERATOR_CHOICES.
    """
    if generator not in GENERATOR_CHOICES:
        raise ValueError(f"unknown site generator {generator!r}")
    detected_from, chosen_by = "", "setting"
    if generator == "auto":
        detection = (
            detect_generator(book_dir)
            if book_dir is not None
            else Detection(FALLBACK_GENERATOR, None)
        )
        generator = detection.generator
        if detection.marker is not None:
            detected_from = detection.marker.name + ("/" if detection.marker.is_dir() else "")
            chosen_by = "detected"
        else:
            chosen_by = "default"
    options = _options(generator, Path(book_dir)) if book_dir is not None else {}
    return SITE_CLASSES[generator](
        site_url=site_url,
        docs_prefix=docs_prefix,
        book_dir=Path(book_dir).resolve() if book_dir is not None else None,
        options=options,
        detected_from=detected_from,
        chosen_by=chosen_by,
    )


def book_site(*, book_dir: Path, config: Any) -> Site:
    """Return the Site of `book_dir` under a RagConfig (SITE_GENERATOR, SITE_URL, prefix)."""
    return site_for(
        book_dir=book_dir,
        generator=getattr(config, "site_generator", "auto"),
        site_url=config.site_url,
        docs_prefix=config.site_docs_prefix,
    )
