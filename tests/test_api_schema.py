"""The OpenAPI document is true: schemathesis drives every endpoint of a live server on
loopback with generated requests (valid and invalid), and every response must be a
documented status with a documented content type, match its schema, and never be a 5xx.

The server answers from a small book ingested with the real embedder, with an ingest
token, so ingestion requests reach the path validation and the task machinery too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ingestion.models import IngestionTask
from ingestion.services import book_ingest
from tests.chat.conftest import SMALL_BOOK

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "schema-test-token"
# What the run checks; the stateful and authorization-bypass checks need resources we
# do not model (there is nothing to create, read back and delete).
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "unsupported_method",
    "allow_header_conformance",
)
# A bound on the run (the whole test stays well under a minute on 2 shared cores):
# cases per operation, one worker, a fixed seed so a failure reproduces. A deeper run:
# RAGSITE_SCHEMATHESIS_EXAMPLES=200 RAGSITE_SCHEMATHESIS_SEED=$RANDOM uv run pytest <this>
MAX_EXAMPLES = int(os.environ.get("RAGSITE_SCHEMATHESIS_EXAMPLES", "10"))
SEED = int(os.environ.get("RAGSITE_SCHEMATHESIS_SEED", "11"))


def write_book(root: Path) -> Path:
    """The small robotics book of tests/chat as Markdown pages under `root`."""
    pages: dict[str, list[str]] = {}
    titles: dict[str, str] = {}
    for path, title, heading, _anchor, body in SMALL_BOOK:
        page = path.removesuffix(".mdx") + ".md"
        titles[page] = title
        pages.setdefault(page, []).append(f"## {heading.split(' > ')[-1]}\n\n{body}\n")
    for page, sections in pages.items():
        target = root / page
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"# {titles[page]}\n\n" + "\n".join(sections), encoding="utf-8")
    return root


@pytest.fixture
def ingested_book(tmp_path, settings):
    """The small book ingested (real embedder, real store); API limits opened wide."""
    settings.BOOK_DIR = write_book(tmp_path / "book")
    settings.INGEST_TOKEN = TOKEN
    for name in ("CHAT", "SEARCH", "FEEDBACK", "INGEST"):  # reach the views, not only 429
        setattr(settings, f"{name}_RATE_LIMIT", "100000/m")
    task = book_ingest(book_dir=settings.BOOK_DIR, source="manage.py")
    assert task.status == "succeeded", task.errors
    assert task.chunks_added >= len(SMALL_BOOK)
    from django.core.cache import cache

    cache.clear()
    yield settings.BOOK_DIR
    cache.clear()


def wait_for_ingestions(timeout: float = 120) -> None:
    """Let ingestions started by the run finish before the store is closed."""
    deadline = time.monotonic() + timeout
    while IngestionTask.objects.filter(status__in=IngestionTask.ACTIVE).exists():
        assert time.monotonic() < deadline, "an ingestion started by the run did not finish"
        time.sleep(0.2)


@pytest.mark.timeout(1900)  # only a deeper run (see MAX_EXAMPLES) comes near it
def test_every_endpoint_matches_its_openapi_schema(live_server, ingested_book, tmp_path):
    schema_url = f"{live_server.url}/api/openapi.json"
    document = httpx.get(schema_url, timeout=10).json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) >= {
        "/api/health", "/api/search", "/api/chat", "/api/feedback", "/api/ingest",
        "/api/ingest/status", "/api/ingest/status/{task_id}",
    }  # fmt: skip

    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        schema_url,
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--report",
        "junit",
        "--report-junit-path",
        str(tmp_path / "junit.xml"),
        "--output-truncate",
        "false",
    ]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=1800, check=False, cwd=tmp_path
        )
    finally:
        wait_for_ingestions()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    print(output)  # the run, for -s
    report = (tmp_path / "junit.xml").read_text()
    for operation in ("GET /api/search", "POST /api/chat", "POST /api/ingest"):
        assert operation in report
