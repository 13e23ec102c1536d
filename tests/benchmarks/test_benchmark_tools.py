"""The benchmark tooling: percentiles, the synthetic chunks, the run plan and the plots.

No timings are asserted here; the benchmarks themselves measure (docs/benchmarks.md).
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import statistics
from pathlib import Path

import pytest

from tests.conftest import import_script

BENCH_DIR = Path(__file__).resolve().parent.parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    """Import a script of benchmarks/ by name (they are scripts, not a package)."""
    return functools.partial(import_script, BENCH_DIR)


def test_percentiles_interpolate_and_summaries_round(bench):
    common = bench("_common")
    values = [10.0, 20.0, 30.0, 40.0]
    assert common.percentile(values, 50) == 25.0
    assert common.percentile(values, 95) == pytest.approx(38.5)
    assert common.percentile([7.0], 95) == 7.0
    assert math.isnan(common.percentile([], 50))
    assert common.summary([1.04, 2.0, 3.0]) == {
        "n": 3,
        "p50": 2.0,
        "p95": 2.9,
        "mean": 2.0,
        "max": 3.0,
    }
    assert common.summary([])["p50"] is None


def test_machine_description_names_cores_load_and_python(bench):
    common = bench("_common")
    info = common.machine()
    line = common.machine_line(info)
    assert info["cpus"] >= 1
    assert len(info["load_average"]) == 3
    assert f"{info['cpus']} CPUs" in line
    assert f"Python {info['python']}" in line
    assert "load average" in line


def test_server_environment_drops_the_developers_llm_and_raises_rate_limits(
    bench, monkeypatch, tmp_path
):
    common = bench("_common")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-key")
    monkeypatch.setenv("QDRANT_URL", "https://qdrant.example")
    env = common.server_env(data_dir=tmp_path, book_dir=tmp_path / "book")
    assert "OPENAI_API_KEY" not in env
    assert "QDRANT_URL" not in env
    assert env["LLM_PROVIDER"] == "extractive"
    assert env["RAGSITE_DATA_DIR"] == str(tmp_path)
    assert env["CHAT_RATE_LIMIT"] == env["SEARCH_RATE_LIMIT"] == common.UNLIMITED_RATE


def test_synthetic_chunks_reuse_real_windows_with_distinct_texts(bench):
    search_api = bench("search_api")
    words = [f"w{i}" for i in range(search_api.REAL_CHUNKS * search_api.WINDOW_WORDS * 2)]
    items = search_api.synthetic_texts(2500, words)
    assert len(items) == 2500
    bodies = [body for _, _, body, _ in items]
    assert len(set(bodies)) == 2500  # every chunk is a distinct text
    path, heading, body, base = items[1500]
    assert base == 500
    assert set(body.split()) <= set(bodies[500].split())  # words dropped from window 500
    assert len(body.split()) < search_api.WINDOW_WORDS


def test_run_plan_covers_every_benchmark_and_shares_the_chat_index(bench, tmp_path):
    run_all = bench("run_all")
    plan = dict(run_all.plan(quick=False, engines=["qdrant-local", "qdrant-edge"], work=tmp_path))
    assert {"ingest", "search_store", "search_api", "retrieval"} <= set(plan)
    for engine in ("qdrant-local", "qdrant-edge"):
        load, breakdown = plan[f"chat_load_{engine}"], plan[f"chat_breakdown_{engine}"]
        assert load[load.index("--levels") + 1 : load.index("--levels") + 5] == [
            "1",
            "10",
            "50",
            "200",
        ]
        assert load[load.index("--data") + 1] == breakdown[breakdown.index("--data") + 1]
    assert plan["search_api"].count("--engine") == 2
    assert "100000" in plan["search_api"]
    assert "100000" not in dict(run_all.plan(quick=True, engines=None, work=tmp_path))["search_api"]


def _results() -> dict:
    summary = {"n": 10, "p50": 50.0, "p95": 90.0, "mean": 55.0, "max": 99.0}
    level = {key: summary for key in ("meta_ms", "sources_ms", "first_token_ms", "done_ms")}
    return {
        "machine": {
            "cpus": 2,
            "cpu_model": "Test CPU",
            "load_average": [1.0, 1.0, 1.0],
            "when": "2026-11-26T00:00:00",
        },
        "benchmarks": {
            "chat_load_qdrant-edge": {
                "status": "ok",
                "figures": {"levels": [{"streams": n, **level} for n in (1, 10, 50)]},
            },
            "search_api": {
                "status": "ok",
                "figures": {
                    "results": [
                        {"engine": "qdrant-edge", "size": size, "http_ms": summary}
                        for size in (1000, 10000)
                    ]
                },
            },
            "retrieval": {
                "status": "ok",
                "figures": {
                    "questions": 48,
                    "chunks": 1070,
                    "methods": [
                        {
                            "method": "hybrid",
                            "label": "hybrid",
                            "recall@1": 0.6,
                            "recall@5": 0.9,
                            "mrr@10": 0.7,
                        },
                        {
                            "method": "bm25",
                            "label": "bm25 only",
                            "recall@1": 0.5,
                            "recall@5": 0.8,
                            "mrr@10": 0.6,
                        },
                    ],
                },
            },
            "ingest": {"status": "failed", "command": "…"},
        },
    }


def test_plots_are_drawn_as_png_files_from_the_results(bench, tmp_path):
    plot = bench("plot")
    results = tmp_path / "latest.json"
    results.write_text(json.dumps(_results()))
    data = json.loads(results.read_text())
    drawn = [
        draw(data, tmp_path) for draw in (plot.chat_latency, plot.search_latency, plot.retrieval)
    ]
    assert [path.name for path in drawn] == [
        "bench-chat-latency.png",
        "bench-search-latency.png",
        "bench-retrieval.png",
    ]
    for path in drawn:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_benchmark_without_figures_is_skipped_not_drawn(bench, tmp_path):
    plot = bench("plot")
    data = _results()
    data["benchmarks"]["search_api"]["status"] = "failed"
    assert plot.search_latency(data, tmp_path) is None
    assert not (tmp_path / "bench-search-latency.png").exists()


def test_open_loop_arrivals_are_a_seeded_poisson_process_inside_the_duration(bench):
    chat_load = bench("chat_load")
    arrivals = chat_load.arrival_schedule(rate=10.0, duration_s=60.0, seed=13)
    assert arrivals == chat_load.arrival_schedule(rate=10.0, duration_s=60.0, seed=13)
    assert arrivals != chat_load.arrival_schedule(rate=10.0, duration_s=60.0, seed=14)
    assert arrivals == sorted(arrivals)
    assert arrivals[0] > 0.0
    assert arrivals[-1] < 60.0
    # 600 expected, standard deviation sqrt(600) ≈ 24.5: four of them either side.
    assert 500 <= len(arrivals) <= 700
    gaps = [b - a for a, b in itertools.pairwise([0.0, *arrivals])]
    assert statistics.mean(gaps) == pytest.approx(0.1, rel=0.1)
    # Exponential gaps: the spread equals the mean, and about e^-1 of them exceed it.
    assert statistics.stdev(gaps) == pytest.approx(0.1, rel=0.15)
    assert sum(gap > 0.1 for gap in gaps) / len(gaps) == pytest.approx(math.exp(-1), abs=0.06)


def test_open_loop_arrivals_scale_with_the_rate_and_refuse_nonsense(bench):
    chat_load = bench("chat_load")
    slow = chat_load.arrival_schedule(rate=2.0, duration_s=100.0, seed=1)
    fast = chat_load.arrival_schedule(rate=20.0, duration_s=100.0, seed=1)
    assert 140 <= len(slow) <= 260
    assert 1800 <= len(fast) <= 2200
    assert chat_load.arrival_schedule(rate=0.001, duration_s=1.0, seed=1) == []
    for rate, duration in ((0.0, 10.0), (-1.0, 10.0), (5.0, 0.0)):
        with pytest.raises(ValueError, match="must be positive"):
            chat_load.arrival_schedule(rate=rate, duration_s=duration, seed=1)


def test_compare_names_the_engine_given_and_keeps_figures_the_baseline_lacks(bench, tmp_path):
    compare = bench("compare")
    assert compare.engine_of(tmp_path, ["--levels", "50", "--engine", "qdrant-local"]) == (
        "qdrant-local"
    )
    assert compare.engine_of(tmp_path, ["--engine=qdrant-edge"]) == "qdrant-edge"
    base = {"results": [{"run": "from scratch", "seconds": 10.0, "chunks_per_s": 50.0}]}
    new = {
        "resting": {"rss_mb": 300.0},
        "results": [
            {"run": "from scratch", "seconds": 5.0, "chunks_per_s": 100.0, "rss_mb": 420.0},
            {"run": "one file changed", "seconds": 0.8, "chunks_per_s": 2000.0, "rss_mb": 430.0},
        ],
    }
    table = {what: (old, cur) for what, old, cur in compare.rows("ingest.py", base, new)}
    assert table["from scratch: chunks/s"] == (50.0, 100.0)
    assert table["one file changed: seconds"] == (None, 0.8)
    assert table["RSS at rest MB"] == (None, 300.0)
    assert compare._ratio(50.0, 100.0) == "2.00x"
    assert compare._ratio(None, 0.8) == "-"
