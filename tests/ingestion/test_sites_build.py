"""Citation links proven against real builds: MkDocs (PyPI) and Hugo (Debian) build a small
fixture site, the same folder is ingested with the real embedder and store, and every chunk
URL must be a built page holding that id. `check_links` is run on the same builds.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from io import StringIO
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from django.core.management import CommandError, call_command

from ingestion.services import book_ingest
from ingestion.sites import built_file, html_ids

pytestmark = pytest.mark.django_db(transaction=True)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sites"
MKDOCS_URL = "https://example.org/robot-notes"
HUGO_URL = "https://example.org/garden"


def copy_fixture(name: str, target: Path) -> Path:
    shutil.copytree(FIXTURES / name, target)
    return target


def chunk_urls(store, embedder) -> list[str]:
    """Every chunk URL the store holds (what a citation links to)."""
    (vector,) = embedder.embed_sync(["robot"])
    hits = store.search(query_text="robot", query_vector=vector, k=store.count(), mode="dense")
    assert len(hits) == store.count()
    return sorted({hit.chunk.url for hit in hits})


def assert_all_urls_resolve(urls: list[str], *, site_url: str, site_dir: Path) -> None:
    """Each URL's page is a built file, and its #fragment is an id in that file's HTML."""
    base_path = urlsplit(site_url).path
    for url in urls:
        parts = urlsplit(url)
        assert url.startswith(site_url + "/"), url
        page = built_file(site_dir, parts.path[len(base_path) :])
        assert page is not None, f"no built page for {url}"
        if parts.fragment:
            ids = set(re.findall(r'\bid="([^"]+)"', page.read_text(encoding="utf-8")))
            assert unquote(parts.fragment) in ids, f"{url}: {page} has no id {parts.fragment}"


def check_links(*args: str) -> tuple[str, CommandError | None]:
    out = StringIO()
    try:
        call_command("check_links", *args, stdout=out)
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


@pytest.fixture
def mkdocs_build(tmp_path, settings):
    """The MkDocs fixture built by the real `mkdocs build`; BOOK_DIR and SITE_URL set."""
    project = copy_fixture("mkdocs", tmp_path / "mkdocs")
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "-q", "-f", "mkdocs.yml", "-d", "site"],
        cwd=project,
        check=True,
        timeout=120,
    )
    settings.BOOK_DIR = project / "docs"
    settings.SITE_URL = MKDOCS_URL
    settings.SITE_GENERATOR = "auto"
    return project


def test_every_mkdocs_chunk_url_is_a_built_page_holding_that_id(mkdocs_build, store, embedder):
    task = book_ingest(book_dir=mkdocs_build / "docs", source="manage.py")
    assert task.status == "succeeded"
    assert task.files_failed == 0
    urls = chunk_urls(store, embedder)
    assert_all_urls_resolve(urls, site_url=MKDOCS_URL, site_dir=mkdocs_build / "site")
    # The rules that differ from Docusaurus are all exercised by the fixture.
    assert f"{MKDOCS_URL}/#getting-started_1" in urls  # a repeat: `_1`
    assert f"{MKDOCS_URL}/sensors/#lidar-radar-2024-models" in urls
    assert f"{MKDOCS_URL}/sensors/#setup_1" in urls
    assert f"{MKDOCS_URL}/sensors/calibration/#unicode-names-are-folded" in urls
    assert f"{MKDOCS_URL}/sensors/calibration/#encoders" in urls  # attr_list {#encoders}
    assert f"{MKDOCS_URL}/motion/#whats-a-pid-loop" in urls  # README.md is the folder

    out, error = check_links("--site-dir", str(mkdocs_build / "site"))
    assert error is None, out
    assert "mkdocs (detected from mkdocs.yml)" in out
    assert "all good" in out


def test_check_links_lists_missing_pages_and_anchors(mkdocs_build, store):
    out = StringIO()
    call_command("ingest_book", stdout=out)
    assert "site:       mkdocs (detected from mkdocs.yml)" in out.getvalue()  # the summary
    site = mkdocs_build / "site"
    shutil.rmtree(site / "motion" / "kinematics")  # a page the site no longer has
    calibration = site / "sensors" / "calibration" / "index.html"
    calibration.write_text(calibration.read_text().replace('id="encoders"', 'id="wheels"'))

    out, error = check_links("--site-dir", str(site))
    assert error is not None
    assert error.returncode == 1
    assert "cited URLs are broken" in str(error)
    broken = [line for line in out.splitlines() if line.startswith("broken")]
    assert f"broken anchor  {MKDOCS_URL}/sensors/calibration/#encoders" in "\n".join(broken)
    assert any(f"broken page    {MKDOCS_URL}/motion/kinematics/" in line for line in broken)
    assert all("kinematics" in line or "#encoders" in line for line in broken), broken


def test_check_links_refuses_a_missing_site_folder(mkdocs_build):
    _, error = check_links("--site-dir", str(mkdocs_build / "nowhere"))
    assert error is not None
    assert "No such folder" in str(error)


def test_html_ids_reads_ids_and_named_anchors():
    assert html_ids('<h2 id="a">A</h2><a name="b"></a><div data-id="c">') == {"a", "b"}


@pytest.fixture
def hugo_build(tmp_path, settings):
    """The Hugo fixture built by the real `hugo`; BOOK_DIR (content/) and SITE_URL set."""
    project = copy_fixture("hugo", tmp_path / "hugo")
    subprocess.run(["hugo", "--quiet", "-d", "public"], cwd=project, check=True, timeout=120)
    settings.BOOK_DIR = project / "content"
    settings.SITE_URL = HUGO_URL
    settings.SITE_GENERATOR = "auto"
    return project


@pytest.mark.skipif(
    shutil.which("hugo") is None, reason="hugo is not installed (apt-get install hugo)"
)
def test_every_hugo_chunk_url_is_a_built_page_holding_that_id(hugo_build, store, embedder):
    task = book_ingest(book_dir=hugo_build / "content", source="manage.py")
    assert task.status == "succeeded"
    assert task.files_failed == 0
    urls = chunk_urls(store, embedder)
    assert_all_urls_resolve(urls, site_url=HUGO_URL, site_dir=hugo_build / "public")
    assert f"{HUGO_URL}/guide/" in urls  # guide/_index.md is the section page
    assert f"{HUGO_URL}/guide/sowing-seeds/#when-to-sow-1" in urls  # lowercased, repeat `-1`
    assert f"{HUGO_URL}/guide/sowing-seeds/#thin-out" in urls  # {#thin-out}
    assert f"{HUGO_URL}/guide/water-wisely/#über-dry-weeks" in map(unquote, urls)  # slug:

    out, error = check_links("--site-dir", str(hugo_build / "public"))
    assert error is None, out
    assert "hugo (detected from hugo.toml)" in out


VITEPRESS_URL = "https://example.org/bread"
# CI installs nothing from npm by default: `npm install vitepress@1` in some folder and
# point VITEPRESS_BIN at its node_modules/.bin/vitepress to run this test.
VITEPRESS_BIN = os.environ.get("VITEPRESS_BIN") or shutil.which("vitepress")


@pytest.fixture
def vitepress_build(tmp_path, settings):
    """The VitePress fixture built by the real `vitepress build`; BOOK_DIR and SITE_URL set."""
    project = copy_fixture("vitepress", tmp_path / "vitepress")
    link_node_modules(project, VITEPRESS_BIN)
    subprocess.run([VITEPRESS_BIN, "build", "docs"], cwd=project, check=True, timeout=300)
    settings.BOOK_DIR = project / "docs"
    settings.SITE_URL = VITEPRESS_URL
    settings.SITE_GENERATOR = "auto"
    return project


@pytest.mark.skipif(VITEPRESS_BIN is None, reason="no vitepress binary (set VITEPRESS_BIN)")
def test_every_vitepress_chunk_url_is_a_built_page_holding_that_id(
    vitepress_build, store, embedder
):
    task = book_ingest(book_dir=vitepress_build / "docs", source="manage.py")
    assert task.status == "succeeded"
    urls = chunk_urls(store, embedder)
    site_dir = vitepress_build / "docs" / ".vitepress" / "dist"
    assert_all_urls_resolve(urls, site_url=VITEPRESS_URL, site_dir=site_dir)
    assert f"{VITEPRESS_URL}/#_1-2-kilos-of-flour" in urls  # a leading digit gets `_`
    assert f"{VITEPRESS_URL}/guide/#resume-timeline" in urls  # accents folded, `&` dropped
    assert f"{VITEPRESS_URL}/guide/kneading.html#snake-case-and-other-names" in urls
    assert f"{VITEPRESS_URL}/guide/kneading.html#rest-1" in urls
    assert f"{VITEPRESS_URL}/guide/kneading.html#shape-the-loaf" in urls  # {#shape-the-loaf}

    out, error = check_links("--site-dir", str(site_dir))
    assert error is None, out
    assert "vitepress (detected from .vitepress/)" in out


STARLIGHT_URL = "https://example.org/sky"
# Like VITEPRESS_BIN: `npm install astro@5 @astrojs/starlight@0.35` (Node 20 runs Astro 5)
# and point ASTRO_BIN at its node_modules/.bin/astro to run this test.
ASTRO_BIN = os.environ.get("ASTRO_BIN")


def link_node_modules(project: Path, binary: str) -> None:
    """Let the build resolve its packages from the binary's own node_modules folder."""
    node_modules = Path(binary).absolute().parent.parent
    if node_modules.name == "node_modules":
        (project / "node_modules").symlink_to(node_modules, target_is_directory=True)


@pytest.fixture
def starlight_build(tmp_path, settings):
    """The Starlight fixture built by the real `astro build`; BOOK_DIR is src/content/docs."""
    project = copy_fixture("starlight", tmp_path / "starlight")
    link_node_modules(project, ASTRO_BIN)
    subprocess.run([ASTRO_BIN, "build"], cwd=project, check=True, timeout=300)
    settings.BOOK_DIR = project / "src" / "content" / "docs"
    settings.SITE_URL = STARLIGHT_URL
    settings.SITE_GENERATOR = "auto"
    return project


@pytest.mark.skipif(ASTRO_BIN is None, reason="no astro binary (set ASTRO_BIN)")
def test_every_starlight_chunk_url_is_a_built_page_holding_that_id(
    starlight_build, store, embedder
):
    book = starlight_build / "src" / "content" / "docs"
    task = book_ingest(book_dir=book, source="manage.py")
    assert task.status == "succeeded"
    assert task.files_total == 3  # reference/_note.md is not a page (Astro skips it too)
    assert not (starlight_build / "dist" / "reference" / "_note").exists()
    urls = chunk_urls(store, embedder)
    assert_all_urls_resolve(urls, site_url=STARLIGHT_URL, site_dir=starlight_build / "dist")
    assert f"{STARLIGHT_URL}/guides/finding-planets/#brightness-1" in urls  # path slugged
    assert any(url.startswith(f"{STARLIGHT_URL}/words/") for url in urls)  # slug: words

    out, error = check_links("--site-dir", str(starlight_build / "dist"))
    assert error is None, out
    assert "starlight (detected from astro.config.mjs)" in out


DOCUSAURUS_URL = "https://example.org/pottery"
# `npm install @docusaurus/core@3 @docusaurus/preset-classic@3 react@18 react-dom@18` and
# point DOCUSAURUS_BIN at its node_modules/.bin/docusaurus to run this (a build takes ~1 min).
DOCUSAURUS_BIN = os.environ.get("DOCUSAURUS_BIN")


@pytest.fixture
def docusaurus_build(settings):
    """The Docusaurus fixture built by the real `docusaurus build`; BOOK_DIR is its docs/."""
    # Its webpack build only transpiles packages found by walking up from the site (a
    # symlinked node_modules is not enough): build beside the binary's node_modules.
    npm_folder = Path(DOCUSAURUS_BIN).absolute().parent.parent.parent
    project = copy_fixture("docusaurus", Path(tempfile.mkdtemp(dir=npm_folder)) / "site")
    try:
        subprocess.run([DOCUSAURUS_BIN, "build"], cwd=project, check=True, timeout=600)
        settings.BOOK_DIR = project / "docs"
        settings.SITE_URL = DOCUSAURUS_URL
        settings.SITE_DOCS_PREFIX = "/docs"
        settings.SITE_GENERATOR = "auto"
        yield project
    finally:
        shutil.rmtree(project.parent)


@pytest.mark.skipif(DOCUSAURUS_BIN is None, reason="no docusaurus binary (set DOCUSAURUS_BIN)")
def test_every_docusaurus_chunk_url_is_a_built_page_holding_that_id(
    docusaurus_build, store, embedder
):
    task = book_ingest(book_dir=docusaurus_build / "docs", source="manage.py")
    assert task.status == "succeeded"
    assert task.files_total == 3  # glazes/_safety.mdx is a partial, not a page
    urls = chunk_urls(store, embedder)
    site_dir = docusaurus_build / "build"
    # The site's baseUrl is `/`: SITE_URL's path is where the build folder is published.
    assert_all_urls_resolve(urls, site_url=DOCUSAURUS_URL, site_dir=site_dir)
    assert f"{DOCUSAURUS_URL}/docs/basics/centering#wet-hands--steady-elbows" in urls
    assert f"{DOCUSAURUS_URL}/docs/basics/centering#timed-practice" in urls  # {#timed-practice}
    assert f"{DOCUSAURUS_URL}/docs/glazes/#dipping-vs-pouring" in urls  # index.md: the folder
    assert f"{DOCUSAURUS_URL}/docs/intro#what-youll-learn" in urls  # slug: /intro

    out, error = check_links("--site-dir", str(site_dir))
    assert error is None, out
    assert "docusaurus (detected from docusaurus.config.js)" in out
