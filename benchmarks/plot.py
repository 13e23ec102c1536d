"""Draw the benchmark figures of benchmarks/results/latest.json into docs/img/bench-*.png.

- bench-chat-latency.png: time to `sources` and to the first `token` (p50 and p95)
  against the number of concurrent chat streams, one line per engine;
- bench-search-latency.png: `/api/search` p50/p95 against the number of chunks;
- bench-retrieval.png: Recall@1/5/10 and MRR@10 of each retrieval method.

    uv run python benchmarks/plot.py                       # from results/latest.json
    uv run python benchmarks/plot.py some/other.json --out /tmp/img
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO_DIR, RESULTS_DIR  # noqa: E402

IMG_DIR = REPO_DIR / "docs" / "img"
TARGET_SOURCES_MS = 100
TARGET_SEARCH_MS = 30
COLOURS = {"qdrant-local": "#c0504d", "qdrant-edge": "#4f81bd", "default": "#4f81bd"}


def _figures(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    if not entry or entry.get("status") != "ok":
        return None
    return entry.get("figures")


def _subtitle(data: dict[str, Any]) -> str:
    info = data["machine"]
    load = info["load_average"][0]
    return f"{info['cpus']} CPUs ({info['cpu_model']}), load average {load:.1f} at start, {info['when'][:10]}"


def chat_latency(data: dict[str, Any], out: Path) -> Path | None:
    """Time to sources / first token against concurrent streams."""
    runs = {
        name.removeprefix("chat_load").strip("_") or "default": _figures(entry)
        for name, entry in data["benchmarks"].items()
        if name.startswith("chat_load")
    }
    runs = {engine: figures for engine, figures in runs.items() if figures}
    if not runs:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key, title in (
        (axes[0], "sources_ms", "time to `sources`"),
        (axes[1], "first_token_ms", "time to first `token`"),
    ):
        for engine, figures in runs.items():
            levels = [row for row in figures["levels"] if row[key]["p50"] is not None]
            x = [row["streams"] for row in levels]
            colour = COLOURS.get(engine)
            ax.plot(
                x, [row[key]["p50"] for row in levels], "o-", color=colour, label=f"{engine} p50"
            )
            ax.plot(
                x, [row[key]["p95"] for row in levels], "s--", color=colour, label=f"{engine} p95"
            )
        if key == "sources_ms":
            ax.axhline(
                TARGET_SOURCES_MS, color="grey", linestyle=":", label="target p95 at 50 streams"
            )
            ax.axvline(50, color="grey", linestyle=":", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("concurrent chat streams")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("milliseconds (log)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"POST /api/chat, extractive answers — {_subtitle(data)}", fontsize=9)
    fig.tight_layout()
    path = out / "bench-chat-latency.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def search_latency(data: dict[str, Any], out: Path) -> Path | None:
    """/api/search p50/p95 against chunks, one line per engine."""
    figures = _figures(data["benchmarks"].get("search_api"))
    if not figures:
        return None
    by_engine: dict[str, list[dict[str, Any]]] = {}
    for row in figures["results"]:
        if row["http_ms"]["p50"] is not None:
            by_engine.setdefault(row["engine"], []).append(row)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for engine, rows in by_engine.items():
        rows.sort(key=lambda row: row["size"])
        x = [row["size"] for row in rows]
        colour = COLOURS.get(engine)
        ax.plot(
            x, [row["http_ms"]["p50"] for row in rows], "o-", color=colour, label=f"{engine} p50"
        )
        ax.plot(
            x, [row["http_ms"]["p95"] for row in rows], "s--", color=colour, label=f"{engine} p95"
        )
    ax.axhline(TARGET_SEARCH_MS, color="grey", linestyle=":", label="target p50 at 10k")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("chunks in the collection")
    ax.set_ylabel("milliseconds per request (log)")
    ax.set_title(f"GET /api/search over HTTP, k=5\n{_subtitle(data)}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "bench-search-latency.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def retrieval(data: dict[str, Any], out: Path) -> Path | None:
    """Recall@n and MRR of each method, grouped bars."""
    figures = _figures(data["benchmarks"].get("retrieval"))
    if not figures or not figures.get("methods"):
        return None
    methods = figures["methods"]
    metrics = [key for key in methods[0] if key.startswith(("recall@", "mrr@"))]
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for i, method in enumerate(methods):
        xs = [j + (i - (len(methods) - 1) / 2) * width for j in range(len(metrics))]
        bars = ax.bar(xs, [method[key] for key in metrics], width, label=method["label"])
        ax.bar_label(bars, fmt="%.3f", fontsize=6)
    ax.set_xticks(
        range(len(metrics)),
        [key.replace("recall", "Recall").replace("mrr", "MRR") for key in metrics],
    )
    ax.set_ylim(0, 1.3)  # room above the bars for the legend
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylabel("share of questions")
    ax.set_title(
        f"Retrieval on the textbook question set ({figures['questions']} questions, "
        f"{figures['chunks']} chunks)",
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="upper left", ncols=2)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    path = out / "bench-retrieval.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    """Draw every plot that latest.json has figures for."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", type=Path, default=RESULTS_DIR / "latest.json")
    parser.add_argument("--out", type=Path, default=IMG_DIR, help="folder for the PNGs")
    args = parser.parse_args()
    data = json.loads(args.results.read_text(encoding="utf-8"))
    args.out.mkdir(parents=True, exist_ok=True)
    for draw in (chat_latency, search_latency, retrieval):
        path = draw(data, args.out)
        print(f"{draw.__name__}: {path or 'no figures to draw'}")


if __name__ == "__main__":
    main()
