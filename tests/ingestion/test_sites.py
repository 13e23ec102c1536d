"""Each generator's page-URL, heading-id and is-a-page rules, with the projects' own examples."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ingestion.markdown import parse_page
from ingestion.sites import (
    DocusaurusSite,
    HugoSite,
    MdBookSite,
    MkDocsSite,
    PlainSite,
    VitePressSite,
    detect_generator,
    hugo_id,
    mdbook_id,
    python_markdown_slug,
    site_for,
    vitepress_slug,
)

SITE = "https://example.org/book"


def ids(site, headings: list[str]) -> list[str]:
    """The ids a generator gives the headings of one page, in order."""
    seen: dict[str, int] = {}
    return [site.heading_id(text, seen) for text in headings]


# --- mdBook ------------------------------------------------------------------------------


# rust-lang/mdBook src/utils/mod.rs, tests `it_normalizes_ids` and `it_generates_anchors*`.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("`--passes`: add more rustdoc passes", "--passes-add-more-rustdoc-passes"),
        ("Method-call 🐙 expressions \U0001f47c", "method-call--expressions-"),
        ("_-_12345", "_-_12345"),
        ("12345", "12345"),
        ("中文", "中文"),
        ("にほんご", "にほんご"),
        ("한국어", "한국어"),
        ("", ""),
        ("Method-call expressions", "method-call-expressions"),
        ("中文標題 CJK title", "中文標題-cjk-title"),
        ("Über", "Über"),  # ASCII-lowercase only
    ],
)
def test_mdbook_normalize_id(text, expected):
    assert mdbook_id(text) == expected


def test_mdbook_numbers_repeats_and_links_chapters_as_html():
    # unique_id_from_content's own test: "Über", "Über-1", "Über-2".
    site = MdBookSite(site_url="https://doc.rust-lang.org/book")
    assert ids(site, ["Über", "中文標題 CJK title", "Über", "Über"]) == [
        "Über",
        "中文標題-cjk-title",
        "Über-1",
        "Über-2",
    ]
    assert ids(site, ["Install {#setup}"]) == ["setup"]
    assert site.page_url("ch04-01-what-is-ownership.md", {}) == (
        "https://doc.rust-lang.org/book/ch04-01-what-is-ownership.html"
    )
    assert site.page_url("README.md", {}) == "https://doc.rust-lang.org/book/index.html"
    assert site.page_url("guide/README.md", {}) == "https://doc.rust-lang.org/book/guide/index.html"
    assert site.page_url("a b.md", {}) == "https://doc.rust-lang.org/book/a%20b.html"


def test_mdbook_builds_only_the_chapters_summary_lists(tmp_path):
    (tmp_path / "SUMMARY.md").write_text(
        "# My Rust Notes\n\n[Intro](intro.md)\n\n- [Ownership](ch01.md)\n"
        "    - [Borrowing](./ch01/borrow.md#top)\n- [Draft chapter]()\n"
    )
    for name in ("intro.md", "ch01.md", "ch01/borrow.md", "notes.md"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("# x\n")
    site = site_for(book_dir=tmp_path)
    assert (site.name, site.detected_from, site.title) == ("mdbook", "SUMMARY.md", "My Rust Notes")
    pages = ["SUMMARY.md", "intro.md", "ch01.md", "ch01/borrow.md", "notes.md"]
    assert [p for p in pages if site.is_page(p)] == ["intro.md", "ch01.md", "ch01/borrow.md"]


def test_book_toml_title_wins_over_summary(tmp_path):
    (tmp_path / "book.toml").write_text('[book]\ntitle = "The Book"\n')
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "SUMMARY.md").write_text("# Summary\n\n- [A](a.md)\n")
    site = site_for(book_dir=tmp_path / "src")
    assert (site.name, site.title) == ("mdbook", "The Book")
    assert site.detected_from == "SUMMARY.md"  # the nearer marker


# --- MkDocs (Python-Markdown's toc) --------------------------------------------------------

SAMPLE_HEADINGS = [
    "Header 1",
    "Some Header",
    "What You'll Learn",
    "Chapter 2: Sensors & Perception (LiDAR)",
    "The String Type",
    "žlutý kůň",
    "Привет non-latin 你好",
    "😄 emoji",
    "snake_case_name",
    "  spaces   inside  ",
    "a -- b",
    "1.2 Numbers",
    "",
]


@pytest.mark.parametrize("text", SAMPLE_HEADINGS)
@pytest.mark.parametrize("unicode", [False, True])
def test_mkdocs_slug_is_python_markdowns(text, unicode):
    from markdown.extensions.toc import slugify  # the real thing (a dev dependency)

    assert python_markdown_slug(text, "-", unicode=unicode) == slugify(text, "-", unicode)


def test_mkdocs_repeats_get_underscore_numbers_like_python_markdown():
    from markdown.extensions.toc import unique

    taken: set[str] = set()
    expected = [unique(base, taken) for base in ["intro", "intro", "intro_1", "", "", "intro"]]
    seen: dict[str, int] = {}
    got = [
        MkDocsSite().unique(base, seen) for base in ["intro", "intro", "intro_1", "", "", "intro"]
    ]
    assert got == expected == ["intro", "intro_1", "intro_2", "_1", "_2", "intro_3"]


@pytest.mark.parametrize(
    ("path", "directory_urls", "route"),
    [
        ("index.md", True, "/"),
        ("README.md", True, "/"),
        ("guide/index.md", True, "/guide/"),
        ("guide/setup.md", True, "/guide/setup/"),
        ("guide/README.md", True, "/guide/"),
        ("index.md", False, "/index.html"),
        ("guide/index.md", False, "/guide/index.html"),
        ("guide/setup.md", False, "/guide/setup.html"),
        ("01-basics.md", True, "/01-basics/"),  # no number prefixes stripped
    ],
)
def test_mkdocs_page_urls(path, directory_urls, route):
    site = MkDocsSite(site_url=SITE, options={"use_directory_urls": directory_urls})
    assert site.page_url(path, {"slug": "ignored"}) == SITE + route


def test_mkdocs_reads_its_config_and_custom_ids_need_attr_list(tmp_path):
    (tmp_path / "mkdocs.yml").write_text(
        "site_name: Robot Notes\nuse_directory_urls: false\n"
        "markdown_extensions:\n  - attr_list\n  - toc:\n      permalink: true\n"
        "      slugify: !!python/name:markdown.extensions.toc.slugify_unicode\n"
    )
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "README.md").write_text("# r\n")
    (tmp_path / "docs" / "index.md").write_text("# i\n")
    site = site_for(book_dir=tmp_path / "docs", site_url=SITE)
    assert (site.name, site.title, site.detected_from) == ("mkdocs", "Robot Notes", "mkdocs.yml")
    assert site.page_url("a.md", {}) == f"{SITE}/a.html"
    assert ids(site, ["Install {#setup}", "Привет"]) == ["setup", "привет"]
    assert not site.is_page("README.md")  # MkDocs skips a README beside an index.md
    assert site.is_page("index.md")
    plain = MkDocsSite()
    assert ids(plain, ["Install {#setup}"]) == ["install-setup"]  # no attr_list: literal text


# --- github-slugger sites: Docusaurus, Starlight ---------------------------------------------


def test_docusaurus_is_the_default_and_skips_partials(tmp_path):
    site = site_for(book_dir=tmp_path, site_url=SITE, docs_prefix="/docs")
    assert (site.name, site.chosen_by) == ("docusaurus", "default")
    assert site.describe() == "docusaurus (no generator files found; the default)"
    assert site.page_url("01-intro/02-setup.md", {}) == f"{SITE}/docs/intro/setup"
    assert ids(site, ["Setup", "Setup", "Setup {#x}", "Setup"]) == [
        "setup",
        "setup-1",
        "x",
        "setup-2",
    ]
    assert not site.is_page("_partials/snippet.mdx")
    assert not site.is_page("guide/_shared.md")
    assert site.is_page("guide/setup.mdx")


def test_docusaurus_config_title_and_detection_from_the_site_root(tmp_path):
    (tmp_path / "docusaurus.config.ts").write_text(
        "const config = {\n  title: 'Physical AI',\n  url: 'https://x.org',\n};\n"
    )
    (tmp_path / "docs").mkdir()
    site = site_for(book_dir=tmp_path / "docs")
    assert (site.name, site.title, site.detected_from) == (
        "docusaurus",
        "Physical AI",
        "docusaurus.config.ts",
    )


def test_starlight_slugs_paths_and_skips_underscore_files(tmp_path):
    (tmp_path / "astro.config.mjs").write_text(
        "export default defineConfig({ integrations: [starlight({ title: 'My Docs' })] });\n"
    )
    docs = tmp_path / "src" / "content" / "docs"
    docs.mkdir(parents=True)
    site = site_for(book_dir=docs, site_url=SITE)
    assert (site.name, site.title) == ("starlight", "My Docs")
    assert site.page_url("guides/Getting Started.md", {}) == f"{SITE}/guides/getting-started/"
    assert site.page_url("index.mdx", {}) == f"{SITE}/"
    assert site.page_url("reference/index.md", {}) == f"{SITE}/reference/"
    assert site.page_url("a.md", {"slug": "custom/path"}) == f"{SITE}/custom/path/"
    assert ids(site, ["What You'll Learn", "What You'll Learn"]) == [
        "what-youll-learn",
        "what-youll-learn-1",
    ]
    assert not site.is_page("_drafts/a.md")


# --- VitePress -----------------------------------------------------------------------------


# The rules of @mdit-vue/shared `slugify` (VitePress' default `markdown.anchor.slugify`):
# NFKD with combining marks removed, control characters dropped, runs of whitespace and
# ASCII punctuation (also `_`) to one `-`, no leading/trailing `-`, `_` before a digit.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Getting Started", "getting-started"),
        ("What You'll Learn", "what-you-ll-learn"),
        ("snake_case_name", "snake-case-name"),
        ("Résumé & CV", "resume-cv"),
        ("1.2 Numbers", "_1-2-numbers"),
        ("(parens) at start", "parens-at-start"),
        ("你好 world", "你好-world"),
    ],
)
def test_vitepress_slug(text, expected):
    assert vitepress_slug(text) == expected


def test_vitepress_urls_follow_clean_urls(tmp_path):
    (tmp_path / ".vitepress").mkdir()
    (tmp_path / ".vitepress" / "config.mts").write_text(
        'export default defineConfig({\n  title: "Vite Book",\n  cleanUrls: true,\n})\n'
    )
    site = site_for(book_dir=tmp_path, site_url=SITE)
    assert (site.name, site.title, site.detected_from) == ("vitepress", "Vite Book", ".vitepress/")
    assert site.page_url("guide/setup.md", {}) == f"{SITE}/guide/setup"
    assert site.page_url("guide/index.md", {}) == f"{SITE}/guide/"
    html = VitePressSite(site_url=SITE)
    assert html.page_url("guide/setup.md", {}) == f"{SITE}/guide/setup.html"
    assert ids(html, ["Setup", "Setup", "Custom {#my-anchor}"]) == ["setup", "setup-1", "my-anchor"]


# --- Hugo ----------------------------------------------------------------------------------


# gohugoio/hugo markup/goldmark/autoid_test.go `TestSanitizeAnchorName` ("generated
# manually on github.com").
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("God is good: 神真美好", "god-is-good-神真美好"),
        ("Number 32", "number-32"),
        ("Question?", "question"),
        ("1+2=3", "123"),
        ('Special !"#$%&(parens)=?´* chars', "special-parens-chars"),
        ("Resumé", "resumé"),
        ("One-Hyphen", "one-hyphen"),
        ("Multiple--Hyphens", "multiple--hyphens"),
        ("Trailing hyphen-", "trailing-hyphen-"),
        ("Many   spaces  here", "many---spaces--here"),
        ("Forward/slash", "forwardslash"),
        ("Backward\\slash", "backwardslash"),
        ("Under_score", "under_score"),
        ("Nonbreaking\u00a0Space", "nonbreakingspace"),
        ("Tab\tSpace", "tabspace"),
        ("Trailing Space ", "trailing-space"),
    ],
)
def test_hugo_goldmark_id(text, expected):
    assert hugo_id(text) == expected


@pytest.mark.parametrize(
    ("path", "front_matter", "route"),
    [
        ("_index.md", {}, "/"),
        ("posts/_index.md", {}, "/posts/"),
        ("posts/My First Post.md", {}, "/posts/my-first-post/"),
        ("posts/bundle/index.md", {}, "/posts/bundle/"),
        ("posts/a.md", {"slug": "renamed"}, "/posts/renamed/"),
        ("posts/a.md", {"url": "/elsewhere/page/"}, "/elsewhere/page/"),
    ],
)
def test_hugo_page_urls(path, front_matter, route):
    assert HugoSite(site_url=SITE).page_url(path, front_matter) == SITE + route


def test_hugo_config_and_repeats(tmp_path):
    (tmp_path / "hugo.toml").write_text(
        "baseURL = 'https://x.org/'\ntitle = 'Hugo Book'\nuglyURLs = true\n"
    )
    (tmp_path / "content").mkdir()
    site = site_for(book_dir=tmp_path / "content", site_url=SITE)
    assert (site.name, site.title, site.detected_from) == ("hugo", "Hugo Book", "hugo.toml")
    assert site.page_url("posts/a.md", {}) == f"{SITE}/posts/a.html"
    assert ids(site, ["Intro", "Intro", "!!", "Mine {#own}"]) == [
        "intro",
        "intro-1",
        "heading",
        "own",
    ]


def test_a_config_toml_is_hugo_only_with_a_base_url(tmp_path):
    (tmp_path / "config.toml").write_text("[tool]\nname = 'x'\n")
    assert detect_generator(tmp_path).generator == "docusaurus"
    (tmp_path / "config.toml").write_text("baseURL = 'https://x.org/'\n")
    assert detect_generator(tmp_path).generator == "hugo"


# --- plain, choice and detection order ---------------------------------------------------------


def test_plain_links_the_file_as_is():
    site = PlainSite(site_url="https://github.com/o/r/blob/main/docs")
    assert (
        site.page_url("guide/setup.md", {})
        == "https://github.com/o/r/blob/main/docs/guide/setup.md"
    )
    assert ids(site, ["Setup {#x}"]) == ["setup-x"]


def test_an_explicit_generator_wins_and_a_wrong_one_is_refused(tmp_path):
    (tmp_path / "SUMMARY.md").write_text("# S\n")
    assert site_for(book_dir=tmp_path, generator="mkdocs").name == "mkdocs"
    assert site_for(book_dir=tmp_path, generator="mkdocs").describe() == "mkdocs (SITE_GENERATOR)"
    with pytest.raises(ValueError, match="unknown site generator"):
        site_for(book_dir=tmp_path, generator="jekyll")


def test_the_nearest_marker_wins(tmp_path):
    (tmp_path / "docusaurus.config.js").write_text("module.exports = {title: 'Site'};\n")
    book = tmp_path / "docs"
    book.mkdir()
    assert detect_generator(book).generator == "docusaurus"
    (book / "SUMMARY.md").write_text("# S\n")
    assert detect_generator(book).generator == "mdbook"


def test_identity_changes_with_url_options():
    a = MkDocsSite(options={"use_directory_urls": True, "title": "A"})
    b = MkDocsSite(options={"use_directory_urls": False, "title": "A"})
    c = MkDocsSite(options={"use_directory_urls": True, "title": "B"})
    assert a.identity != b.identity
    assert a.identity == c.identity  # the title shapes no URL
    chapters = MdBookSite(options={"chapters": frozenset({"a.md", "b.md"}), "title": "T"})
    assert chapters.identity == "mdbook"  # stable across processes (no set in it)


# --- through the page parser ----------------------------------------------------------------


def test_parse_page_uses_the_sites_rules_for_urls_and_anchors():
    text = "# Ownership\n\n## The `String` Type\n\nA.\n\n## What Is Ownership?\n\nB.\n\n## The String Type\n\nC.\n"
    rust = parse_page(
        path="ch04-01-what-is-ownership.md",
        text=text,
        site_url="",
        site=MdBookSite(site_url="https://doc.rust-lang.org/book"),
    )
    assert rust.url == "https://doc.rust-lang.org/book/ch04-01-what-is-ownership.html"
    assert [s.anchor for s in rust.sections] == [
        "",
        "the-string-type",
        "what-is-ownership",
        "the-string-type-1",
    ]
    mkdocs = parse_page(path="ch04.md", text=text, site_url="", site=MkDocsSite(site_url=SITE))
    assert mkdocs.url == f"{SITE}/ch04/"
    assert [s.anchor for s in mkdocs.sections] == [
        "",
        "the-string-type",
        "what-is-ownership",
        "the-string-type_1",
    ]
    docusaurus = parse_page(path="ch04.md", text=text, site_url=SITE, docs_prefix="/docs")
    assert docusaurus.url == f"{SITE}/docs/ch04"


def test_rust_book_chapters_link_to_html_pages(rust_book_dir: Path):
    site = site_for(
        book_dir=rust_book_dir, site_url="https://doc.rust-lang.org/book", docs_prefix="/docs"
    )
    assert site.name == "mdbook"
    assert not site.is_page("SUMMARY.md")
    assert site.is_page("ch04-01-what-is-ownership.md")
    assert DocusaurusSite().is_page("SUMMARY.md")  # only mdBook knows it is the table of contents


def test_rust_book_page_url_and_anchors_are_the_published_ones(rust_book_dir: Path):
    # Anchors of https://doc.rust-lang.org/book/ch04-01-what-is-ownership.html as published.
    site = site_for(book_dir=rust_book_dir, site_url="https://doc.rust-lang.org/book")
    path = "ch04-01-what-is-ownership.md"
    page = parse_page(path=path, text=(rust_book_dir / path).read_text(), site_url="", site=site)
    assert page.url == "https://doc.rust-lang.org/book/ch04-01-what-is-ownership.html"
    anchors = {section.anchor for section in page.sections}
    assert anchors >= {
        "ownership-rules",
        "variable-scope",
        "the-string-type",
        "memory-and-allocation",
        "variables-and-data-interacting-with-move",
        "variables-and-data-interacting-with-clone",
        "stack-only-data-copy",
        "ownership-and-functions",
        "return-values-and-scope",
    }


def test_hugo_toml_front_matter_is_read_and_not_indexed():
    text = '+++\ntitle = "Sowing"\nslug = "sow"\ndraft = false\n+++\n\nSow thin.\n\n## When to sow\n\nIn spring.\n'
    page = parse_page(path="guide/seeds.md", text=text, site_url="", site=HugoSite(site_url=SITE))
    assert (page.title, page.url) == ("Sowing", f"{SITE}/guide/sow/")
    texts = [block.text for section in page.sections for block in section.blocks]
    assert texts == ["Sow thin.", "In spring."]
    assert [section.anchor for section in page.sections] == ["", "when-to-sow"]


def test_the_textbook_keeps_its_docusaurus_links_under_auto(textbook_dir: Path):
    # SITE_GENERATOR=auto finds no generator file beside the textbook's docs/: Docusaurus,
    # and every page URL and anchor is exactly what the parser gave before generators.
    site = site_for(book_dir=textbook_dir, site_url="https://b.org/robotics", docs_prefix="/docs")
    assert site.name == "docusaurus"
    pages = sorted(p.relative_to(textbook_dir).as_posix() for p in textbook_dir.rglob("*.md*"))
    assert all(site.is_page(p) for p in pages)
    for path in pages:
        text = (textbook_dir / path).read_text(encoding="utf-8")
        before = parse_page(path=path, text=text, site_url="https://b.org/robotics")
        after = parse_page(path=path, text=text, site_url="", site=site)
        assert after.url == before.url
        assert [s.anchor for s in after.sections] == [s.anchor for s in before.sections]


MKDOCS_TRICKY_PAGE = """# Guide

## Setup

a

## Setup

b

## Other {#setup_1}

c

## The `String` Type & <em>HTML</em>

d

## Über naïve café

e

## 2024: What's new?

f

## Setup

g
"""


def test_mkdocs_anchors_are_the_ids_python_markdown_renders():
    import markdown

    rendered = markdown.markdown(MKDOCS_TRICKY_PAGE, extensions=["toc", "attr_list"])
    expected = re.findall(r'<h[1-6] id="([^"]+)"', rendered)
    site = MkDocsSite(options={"attr_list": True})
    page = parse_page(path="guide.md", text=MKDOCS_TRICKY_PAGE, site_url="", site=site)
    # The page's opening heading is its title, not a section: its id is the first one.
    assert ["guide", *[s.anchor for s in page.sections[1:]]] == expected
    assert expected[1:4] == ["setup", "setup_2", "setup_1"]  # a later {#setup_1} is reserved
