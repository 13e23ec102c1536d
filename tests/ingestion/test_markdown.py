"""Reading pages: what a reader sees on the published page is what gets indexed.

Real pages come from the vendored books in tests/fixtures/ and, in the whole-book tier,
from the two full books in ../shared/books (tests/conftest.py)."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from ingestion.markdown import (
    FRONT_MATTER_INVALID_MESSAGE,
    PAGE_BINARY_MESSAGE,
    PageError,
    ParsedPage,
    decode_page,
    heading_anchor,
    page_url,
    parse_page,
)

SITE = "https://mrowaisabdullah.github.io/ai-humanoid-robotics"
DOCUSAURUS_FIXTURE_DIR = (
    Path(__file__).resolve().parents[1] / "fixtures" / "docusaurus-site" / "docs"
)


@functools.cache
def read(book: Path, rel: str) -> ParsedPage:
    """Parse one page of a real book, as the ingestion services do (once per test run)."""
    return parse_page(path=rel, text=decode_page((book / rel).read_bytes()), site_url=SITE)


def page_texts(page: ParsedPage) -> list[str]:
    return [block.text for section in page.sections for block in section.blocks]


def all_pages(book: Path) -> list[str]:
    return sorted(p.relative_to(book).as_posix() for p in book.rglob("*.md*"))


def fenced_lines(text: str, *, mdx: bool) -> list[str]:
    """The lines inside fenced code blocks of a source page, found by markdown-it."""
    from ingestion.markdown import _parser

    tokens = _parser(mdx=mdx).parse(text)
    return [line for t in tokens if t.type == "fence" for line in t.content.splitlines()]


def prose_of(text: str) -> str:
    """A block's text without fenced code and code spans: what must hold no MDX syntax."""
    text = re.sub(r"^([ \t]*)(`{3,})[^\n]*\n.*?^[ \t]*\2[ \t]*$", "", text, flags=re.S | re.M)
    return re.sub(r"`+[^`]*`+", "", text)


# --- bytes --------------------------------------------------------------------------


def test_invalid_utf8_is_a_page_error_saying_so():
    with pytest.raises(PageError, match="not valid UTF-8: byte 0xff at offset 6"):
        decode_page(b"# Hi\n\n\xff\xfe broken")


def test_binary_file_is_a_page_error():
    with pytest.raises(PageError) as caught:
        decode_page(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert str(caught.value) == PAGE_BINARY_MESSAGE


def test_bom_and_windows_newlines_are_read_as_plain_text():
    assert decode_page("\ufeff# Títle\r\n\r\nBody\r\n".encode()) == "# Títle\n\nBody\n"


# --- front matter and titles ---------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "title"),
    [
        ("intro.md", "Welcome"),
        ("lab-infrastructure/jetson-setup/index.mdx", "Jetson Orin Nano Setup Guide"),
        ("lab-infrastructure/cloud-alternatives/index.mdx", "Cloud Deployment Guide"),
        (
            "part-3-motion-control/chapter-11-manipulation-grasping.mdx",
            "Chapter 11 - Manipulation and Grasping",
        ),
        (
            "part-1-foundations/chapter-2-sensors-perception.mdx",
            "Chapter 2: Sensors & Perception (LiDAR, Cameras, IMUs)",
        ),
    ],
)
def test_front_matter_title_is_the_page_title(textbook_dir, rel, title):
    page = read(textbook_dir, rel)
    assert page.title == title
    assert page.draft is False


@pytest.mark.parametrize(
    ("rel", "title"),
    [
        ("intro.md", "Welcome"),
        ("lab/bench-setup/index.mdx", "Bench Setup Guide"),
        ("lab/remote-machines/index.mdx", "Remote Machines"),
        ("basics/chapter-1-sensing.mdx", "Chapter 1: Sensing the World"),
        ("basics/chapter-2-moving.mdx", "Chapter 2: Moving Safely"),
    ],
)
def test_front_matter_title_is_the_title_of_each_vendored_page(docusaurus_fixture_dir, rel, title):
    page = read(docusaurus_fixture_dir, rel)
    assert page.title == title
    assert page.draft is False


def test_vendored_heading_equal_to_the_title_is_not_repeated(docusaurus_fixture_dir):
    page = read(docusaurus_fixture_dir, "basics/chapter-1-sensing.mdx")
    assert page.sections[0].heading_path == ()
    assert not any(text.startswith("# Chapter 1") for text in page_texts(page))
    assert page.sections[1].heading_path == ("What You'll Learn",)


def test_vendored_heading_different_from_the_title_stays(docusaurus_fixture_dir):
    # Front matter says "Chapter 2", the page's own heading says "Chapter 3".
    page = read(docusaurus_fixture_dir, "basics/chapter-2-moving.mdx")
    assert page.title == "Chapter 2: Moving Safely"
    assert page.sections[0].blocks[0].text == "# Chapter 3: Moving Safely"
    intro = read(docusaurus_fixture_dir, "intro.md")  # title "Welcome", a longer heading
    assert intro.sections[0].blocks[0].text == "# Welcome to the Field Robotics Handbook"


def test_opening_heading_equal_to_the_title_is_not_repeated_in_the_text(textbook_dir):
    page = read(textbook_dir, "part-1-foundations/chapter-1-introduction.mdx")
    assert page.sections[0].heading_path == ()
    assert not any(text.startswith("# Chapter 1") for text in page_texts(page))
    assert page.sections[1].heading_path == ("What You'll Learn",)


def test_opening_heading_different_from_the_title_stays_in_the_text(textbook_dir):
    # Front matter says "Chapter 7", the page's own heading says "Chapter 4".
    page = read(textbook_dir, "part-2-nervous-system/chapter-7-ros2-nodes-python.mdx")
    assert page.title == "Chapter 7: Building ROS 2 Nodes with Python"
    assert page.sections[0].blocks[0].text == "# Chapter 4: Building ROS 2 Nodes with Python"


def test_mdbook_page_title_is_its_opening_heading(rust_fixture_dir):
    page = read(rust_fixture_dir, "ch05-01-defining-structs.md")
    assert page.title == "Defining and Instantiating Structs"
    assert [s.heading_path for s in page.sections[1:3]] == [
        ("Using the Field Init Shorthand",),
        ("Creating Instances with Struct Update Syntax",),
    ]


def test_title_falls_back_to_first_h1_then_to_the_file_name():
    assert parse_page(path="a.md", text="Intro.\n\n# Real Title\n\nText.", site_url="").title == (
        "Real Title"
    )
    assert parse_page(
        path="guides/02-getting_started.md", text="Just text.", site_url=""
    ).title == ("Getting started")


def test_invalid_front_matter_yaml_is_a_page_error():
    text = "---\ntitle: [unclosed\n---\n\n# Page\n"
    with pytest.raises(PageError, match=re.escape(FRONT_MATTER_INVALID_MESSAGE.split("{")[0])):
        parse_page(path="bad.md", text=text, site_url="")


def test_front_matter_that_is_not_a_mapping_is_a_page_error():
    with pytest.raises(PageError, match="must be a YAML mapping"):
        parse_page(path="bad.md", text="---\n- a\n- b\n---\n\nText\n", site_url="")


def test_draft_flag_is_read_from_front_matter():
    draft = parse_page(
        path="wip.mdx", text="---\ntitle: WIP\ndraft: true\n---\n\nSoon.\n", site_url=""
    )
    assert draft.draft is True
    assert (
        parse_page(path="ok.md", text="---\ndraft: false\n---\n\nText.\n", site_url="").draft
        is False
    )


# --- URLs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "url"),
    [
        # slug: /intro is absolute: relative to the docs base.
        ("intro.md", f"{SITE}/docs/intro"),
        # index.mdx maps to its folder.
        (
            "lab-infrastructure/jetson-setup/index.mdx",
            f"{SITE}/docs/lab-infrastructure/jetson-setup/",
        ),
        # index.mdx with an explicit slug uses the slug.
        (
            "lab-infrastructure/cloud-alternatives/index.mdx",
            f"{SITE}/docs/lab-infrastructure/cloud-alternatives",
        ),
        (
            "part-1-foundations/chapter-1-introduction.mdx",
            f"{SITE}/docs/part-1-foundations/chapter-1-introduction",
        ),
        (
            "lab-infrastructure/budget-calculator.mdx",
            f"{SITE}/docs/lab-infrastructure/budget-calculator",
        ),
    ],
)
def test_textbook_page_urls_follow_docusaurus(textbook_dir, rel, url):
    assert read(textbook_dir, rel).url == url


@pytest.mark.parametrize(
    ("rel", "url"),
    [
        ("intro.md", f"{SITE}/docs/intro"),  # slug: /intro
        ("lab/bench-setup/index.mdx", f"{SITE}/docs/lab/bench-setup/"),  # index: its folder
        ("lab/remote-machines/index.mdx", f"{SITE}/docs/lab/remote-machines"),  # its slug
        ("lab/parts-list.mdx", f"{SITE}/docs/lab/parts-list"),
        ("basics/chapter-1-sensing.mdx", f"{SITE}/docs/basics/chapter-1-sensing"),
        ("basics/chapter-2-moving.mdx", f"{SITE}/docs/basics/moving-safely"),  # id: moving-safely
    ],
)
def test_vendored_page_urls_follow_docusaurus(docusaurus_fixture_dir, rel, url):
    assert read(docusaurus_fixture_dir, rel).url == url


@pytest.mark.parametrize(
    ("path", "front_matter", "route"),
    [
        ("guide/setup.md", {}, "/docs/guide/setup"),
        ("guide/index.md", {}, "/docs/guide/"),
        ("guide/README.mdx", {}, "/docs/guide/"),
        ("guide/guide.md", {}, "/docs/guide/"),
        ("index.md", {}, "/docs/"),
        ("01-basics/02-first-steps.md", {}, "/docs/basics/first-steps"),
        ("2024-01-release.md", {}, "/docs/2024-01-release"),  # a date is not an ordering prefix
        ("guide/setup.md", {"slug": "install"}, "/docs/guide/install"),
        ("guide/setup.md", {"slug": "../install"}, "/docs/install"),
        ("guide/setup.md", {"slug": "/start"}, "/docs/start"),
        ("guide/index.md", {"slug": "/"}, "/docs/"),
        ("guide/setup.md", {"id": "getting-set-up"}, "/docs/guide/getting-set-up"),
        ("guide/setup.md", {"id": "x", "slug": "y"}, "/docs/guide/y"),
    ],
)
def test_page_url_rules(path, front_matter, route):
    url = page_url(
        path=path, front_matter=front_matter, site_url="https://b.org/", docs_prefix="/docs"
    )
    assert url == "https://b.org" + route


def test_page_url_without_docs_prefix_or_site():
    assert page_url(path="a/b.md", front_matter={}, site_url="https://b.org", docs_prefix="") == (
        "https://b.org/a/b"
    )
    assert page_url(path="a/b.md", front_matter={}, site_url="", docs_prefix="/docs") is None


# --- anchors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "text", "anchor"),
    [
        ("What You'll Learn", "What You'll Learn", "what-youll-learn"),
        (
            "Chapter 2: Sensors & Perception (LiDAR)",
            "Chapter 2: Sensors & Perception (LiDAR)",
            "chapter-2-sensors--perception-lidar",
        ),
        ("The `String` Type", "The String Type", "the-string-type"),
        (
            "Using **bold** and [a link](https://x.org)",
            "Using bold and a link",
            "using-bold-and-a-link",
        ),
        ("Stack-Only Data: Copy", "Stack-Only Data: Copy", "stack-only-data-copy"),
        ("Привет non-latin 你好", "Привет non-latin 你好", "привет-non-latin-你好"),
        ("😄 emoji", "😄 emoji", "-emoji"),
        ("snake_case_name", "snake_case_name", "snake_case_name"),
        ("Install the SDK {#sdk}", "Install the SDK", "sdk"),
        ("Part *one* two {#custom-id}", "Part one two", "custom-id"),
    ],
)
def test_heading_anchor_is_the_docusaurus_slug(source, text, anchor):
    assert heading_anchor(source) == (text, anchor)


def test_duplicate_headings_get_numbered_anchors_and_custom_ids_are_kept():
    text = (
        "---\ntitle: Setup\n---\n\n# Setup\n\nIntro.\n\n## Install\n\nA.\n\n## Usage\n\nB.\n\n"
        "### Install\n\nC.\n\n## Install {#install-again}\n\nD.\n\n## Install\n\nE.\n"
    )
    page = parse_page(path="setup.mdx", text=text, site_url="https://b.org")
    anchors = [(s.heading_path, s.anchor) for s in page.sections]
    assert anchors == [
        ((), ""),
        (("Install",), "install"),
        (("Usage",), "usage"),
        (("Usage", "Install"), "install-1"),
        (("Install",), "install-again"),
        (("Install",), "install-2"),
    ]


def test_vendored_sections_have_docusaurus_anchors(docusaurus_fixture_dir):
    page = read(docusaurus_fixture_dir, "lab/bench-setup/index.mdx")
    by_path = {s.heading_path: s.anchor for s in page.sections}
    assert by_path[("What You'll Learn",)] == "what-youll-learn"
    assert by_path[("Installing the Toolchain", "Operating System Packages")] == (
        "operating-system-packages"
    )
    parts = read(docusaurus_fixture_dir, "lab/parts-list.mdx")
    assert [s.anchor for s in parts.sections] == [
        "",
        "starter-kit-about-250-euros",
        "research-kit-about-1400-euros",
        "borrowing-instead-of-buying",
    ]


def test_textbook_sections_have_docusaurus_anchors(textbook_dir):
    page = read(textbook_dir, "lab-infrastructure/jetson-setup/index.mdx")
    by_path = {s.heading_path: s.anchor for s in page.sections}
    assert by_path[("What You'll Learn",)] == "what-youll-learn"
    assert (
        by_path[
            ("Initial Setup", "Flashing JetPack SDK", "Method 1: NVIDIA SDK Manager (Recommended)")
        ]
        == "method-1-nvidia-sdk-manager-recommended"
    )


# --- MDX -------------------------------------------------------------------------------


def test_no_mdx_imports_exports_or_jsx_left_in_prose(docusaurus_book):
    for rel in all_pages(docusaurus_book):
        for text in page_texts(read(docusaurus_book, rel)):
            prose = prose_of(text)
            assert not re.search(r"^\s*(import|export)\s", prose, re.M), (rel, text[:80])
            assert not re.search(r"</?[A-Z][\w.]*[\s/>]", prose), (rel, text[:80])
            assert "<!--" not in prose, (rel, text[:80])
            assert ":::" not in prose, (rel, text[:80])


def test_import_lines_inside_code_blocks_are_all_kept(docusaurus_book):
    for rel in all_pages(docusaurus_book):
        source = decode_page((docusaurus_book / rel).read_bytes())
        wanted = [
            line.strip()
            for line in fenced_lines(source, mdx=rel.endswith(".mdx"))
            if line.lstrip().startswith("import ")
        ]
        # Code inside a list item is indented under its item: compare stripped lines.
        kept = [
            line.strip()
            for text in page_texts(read(docusaurus_book, rel))
            for line in text.splitlines()
            if line.lstrip().startswith("import ")
        ]
        assert kept == wanted, rel


def test_both_books_really_have_import_lines_in_code_and_in_mdx(docusaurus_fixture_dir):
    chapter = decode_page((docusaurus_fixture_dir / "basics/chapter-1-sensing.mdx").read_bytes())
    assert "import numpy as np" in fenced_lines(chapter, mdx=True)
    setup = decode_page((docusaurus_fixture_dir / "lab/bench-setup/index.mdx").read_bytes())
    assert "import Tabs from '@theme/Tabs';" in setup.splitlines()


def test_the_textbook_really_has_import_lines_in_code(textbook_dir):
    # Python samples start with imports.
    chapter = decode_page(
        (textbook_dir / "part-1-foundations/chapter-4-motion-planning.mdx").read_bytes()
    )
    assert "import numpy as np" in fenced_lines(chapter, mdx=True)


def test_vendored_component_and_its_import_vanish(docusaurus_fixture_dir):
    page = read(docusaurus_fixture_dir, "lab/parts-list.mdx")
    joined = "\n".join(page_texts(page))
    assert "PartsTable" not in joined
    assert "@site/" not in joined
    assert "The parts list tells students and supervisors what each kit contains" in joined
    moving = "\n".join(page_texts(read(docusaurus_fixture_dir, "basics/chapter-2-moving.mdx")))
    assert "may drive at 0.5 metres per second at most" in moving  # an inline component's text
    assert "export const" not in moving
    assert "2024 review" not in moving  # an MDX comment
    assert "Why not a software stop?" in moving  # a <details> summary


def test_self_closing_component_and_its_import_vanish(textbook_dir):
    page = read(textbook_dir, "lab-infrastructure/budget-calculator.mdx")
    joined = "\n".join(page_texts(page))
    assert "BudgetCalculator" not in joined.replace("Budget Calculator", "")
    assert "The Budget Calculator helps students and educators" in joined


def test_vendored_admonitions_keep_their_text_and_title(docusaurus_fixture_dir):
    def admonitions(rel):
        page = read(docusaurus_fixture_dir, rel)
        return [b.text for s in page.sections for b in s.blocks if b.kind == "admonition"]

    assert admonitions("lab/bench-setup/index.mdx") == [
        "Note: Ask a supervisor for an account on the lab's package mirror before you start: "
        "the installation downloads about 4 GB of packages."
    ]
    assert admonitions("lab/parts-list.mdx") == [
        "Batteries: Store LiPo batteries in the fireproof bag at half charge, and never leave "
        "one charging unattended."
    ]
    assert admonitions("basics/chapter-2-moving.mdx") == [
        "Danger: Never tape, wedge or bridge an emergency stop, not even for a quick test."
    ]
    assert admonitions("lab/remote-machines/index.mdx")[0].startswith(
        "Save your place: Write a checkpoint every few minutes."
    )


def test_admonition_text_is_kept(textbook_dir):
    page = read(textbook_dir, "lab-infrastructure/jetson-setup/index.mdx")
    admonitions = [b.text for s in page.sections for b in s.blocks if b.kind == "admonition"]
    assert admonitions == [
        "Note: For humanoid robotics applications, we recommend the 8GB variant to handle "
        "multiple sensor streams and complex neural models simultaneously."
    ]


def test_vendored_tab_items_keep_their_labels_and_content(docusaurus_fixture_dir):
    page = read(docusaurus_fixture_dir, "lab/bench-setup/index.mdx")
    sections = {s.heading_path[-1:]: [b.text for b in s.blocks] for s in page.sections}
    camera = sections[("Camera Test",)]
    assert camera[:2] == ["Python script:", "Quick Capture:"]
    assert camera[2].startswith("```python\nimport cv2\n")
    assert "Command line:" in camera
    assert camera[-1] == "```bash\nv4l2-ctl --list-devices\n```"
    packages = sections[("Operating System Packages",)]
    assert packages[0] == "Ubuntu 22.04:"
    assert "Debian 12:" in packages
    assert any("sudo apt-get install -y build-essential" in text for text in packages)


def test_tab_item_content_and_labels_are_kept(textbook_dir):
    page = read(textbook_dir, "lab-infrastructure/realsense-setup/index.mdx")
    section = next(
        s for s in page.sections if s.heading_path[-1:] == ("Depth Accuracy Optimization",)
    )
    texts = [b.text for b in section.blocks]
    assert "High Accuracy Mode:" in texts
    assert any("rs.visual_preset_high_accuracy" in t and t.startswith("```python") for t in texts)
    assert any("rs.visual_preset_default" in t for t in texts)


def test_mermaid_diagrams_are_not_indexed(docusaurus_book):
    source = decode_page((DOCUSAURUS_FIXTURE_DIR / "basics/chapter-1-sensing.mdx").read_bytes())
    assert "```mermaid\ngraph LR" in source  # the vendored site has one
    for rel in all_pages(docusaurus_book):
        for text in page_texts(read(docusaurus_book, rel)):
            assert "```mermaid" not in text
            assert "graph TD" not in text
            assert "graph LR" not in text


def test_vendored_code_blocks_keep_their_language_fence(docusaurus_fixture_dir):
    page = read(docusaurus_fixture_dir, "basics/chapter-1-sensing.mdx")
    code = [b.text for s in page.sections for b in s.blocks if b.kind == "code"]
    assert len(code) == 2  # the mermaid block is not code a reader searches
    assert code[0].startswith("```python\nimport numpy as np\n")
    assert code[1].startswith("```python\nimport math\n")
    assert all(text.endswith("\n```") for text in code)


def test_code_blocks_keep_their_language_fence(textbook_dir):
    page = read(textbook_dir, "part-1-foundations/chapter-4-motion-planning.mdx")
    code = [b.text for s in page.sections for b in s.blocks if b.kind == "code"]
    assert code[0].startswith("```python\nimport numpy as np\n")
    assert all(text.endswith("\n```") for text in code)


def test_components_and_comments_in_a_small_mdx_page():
    text = """---
title: Tabs demo
---
import Tabs from '@theme/Tabs';
export const meta = {level: 2};

Intro <Highlight color="red">highlighted words</Highlight> here.{/* an MDX comment */}

<!-- an HTML comment -->

<Tabs>
  <TabItem value="py" label="Python">
    Python text inside the tab.
  </TabItem>
</Tabs>

:::tip[Remember]
Admonition **body**.

```python
import os
```
:::

```python
import sys
export_value = 1
```
"""
    page = parse_page(path="demo.mdx", text=text, site_url="")
    texts = page_texts(page)
    assert texts == [
        "Intro highlighted words here.",
        "Python:",
        "Python text inside the tab.",
        "Remember: Admonition body.",
        "```python\nimport os\n```",
        "```python\nimport sys\nexport_value = 1\n```",
    ]


def test_mdbook_listing_captions_and_html_comments(rust_fixture_dir):
    page = read(rust_fixture_dir, "ch05-01-defining-structs.md")
    texts = page_texts(page)
    assert "Listing 5-1: A `User` struct definition" in texts
    joined = "\n".join(texts)
    assert "<Listing" not in joined
    assert "</Listing>" not in joined
    assert "manual-regeneration" not in joined  # an HTML comment in the source
    # The inline comment after a link is gone; the link text stays.
    assert "Structs are similar to tuples, discussed in “The Tuple Type” section" in joined


def test_code_written_inside_a_component_is_left_exactly_as_written():
    text = """<Tabs>
  <TabItem value="cpp" label="C++">
    ```cpp
    auto node = std::make_shared<RobotNode>(); // a &amp; b <!-- kept -->
    ```
  </TabItem>
</Tabs>

<details>
<summary>Show the answer</summary>

The answer is 42.

</details>

::::note
Outer

:::tip[Inner title]
Inner text.
:::
::::
"""
    texts = page_texts(parse_page(path="tabs.mdx", text=text, site_url=""))
    assert texts == [
        "C++:",
        "```cpp\nauto node = std::make_shared<RobotNode>(); // a &amp; b <!-- kept -->\n```",
        "Show the answer",
        "The answer is 42.",
        "Note: Outer",
        "Inner title: Inner text.",
    ]


def test_indented_text_in_mdx_is_prose_but_in_markdown_is_code():
    text = "Intro.\n\n    indented line\n"
    assert page_texts(parse_page(path="a.mdx", text=text, site_url="")) == [
        "Intro.",
        "indented line",
    ]
    assert page_texts(parse_page(path="a.md", text=text, site_url="")) == [
        "Intro.",
        "```\nindented line\n```",
    ]


def test_lines_that_open_in_bold_stay_lines_and_other_lines_are_joined():
    # The textbook's GPU guide ends with labelled lines, one under another.
    page = parse_page(
        path="gpu.md",
        text="# GPU\n\n"
        "**Performance Gain**: 30-50% improvement with proper optimization\n"
        "**Prerequisites**: NVIDIA RTX GPU, Ubuntu 22.04 LTS\n\n"
        "A paragraph that is **bold** in the middle\nand wraps onto **a second line** here.\n",
        site_url=SITE,
    )
    assert page_texts(page) == [
        "Performance Gain: 30-50% improvement with proper optimization\n"
        "Prerequisites: NVIDIA RTX GPU, Ubuntu 22.04 LTS",
        "A paragraph that is bold in the middle and wraps onto a second line here.",
    ]
