"""The abuse load script, small: concurrent SSE chats with cut-offs, zero errors, zero 5xx."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.conftest import import_script
from tests.test_check_index import index_small_book

BENCH_DIR = Path(__file__).resolve().parent.parent / "benchmarks"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def abuse_load():
    """benchmarks/abuse_load.py (a script, not a package)."""
    return import_script(BENCH_DIR, "abuse_load")


def test_plan_interleaves_and_rotates_cut_off_points(abuse_load):
    assert abuse_load._plan(3, 4) == [None, "meta", None, "sources", None, "token", "meta"]


def test_only_loopback_is_a_target(abuse_load):
    with pytest.raises(ValueError, match="only targets loopback"):
        asyncio.run(abuse_load.abuse_run("http://192.0.2.1", streams=1, aborted=0, concurrency=1))


def test_concurrent_streams_with_cut_offs_have_no_errors(
    abuse_load, live_server, settings, llm_settings, fake_openai, tmp_path
):
    index_small_book(tmp_path, settings)
    settings.CHAT_RATE_LIMIT = "1000/m"
    fake_openai.token_delay = 0.01  # cut-offs land while the model is still streaming
    result = asyncio.run(
        abuse_load.abuse_run(live_server.url, streams=20, aborted=10, concurrency=10, budget_s=120)
    )
    assert result["errors"] == []
    assert result["five_xx"] == 0
    assert result["statuses"] == {"200": 30}
    assert result["completed"] == 20
    assert result["cut_off"] == 10
    assert result["health_after"] in {"ok", "degraded"}
