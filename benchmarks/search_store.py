"""Search latency of the Qdrant store (no embedder) at a few collection sizes.

Chunks are 150-word windows of the books in ../shared/books (real term statistics for
the sparse half) with random unit 384-d vectors; queries are 6-word windows of the
same text. Prints p50/p95 per mode, in milliseconds.

`--engine` picks the embedded engine: `client` (qdrant-client local mode, the default),
`edge` (qdrant-edge, `VECTOR_ENGINE=qdrant-edge`) or `both`, which loads the same
chunks into each and asks them the same queries, side by side. The edge engine is
measured as ingested and again after `optimize()` (HNSW index; skip with --no-optimize).

    uv run python benchmarks/search_store.py                # 1k and 10k, in memory
    uv run python benchmarks/search_store.py --sizes 5000 --path /tmp/qdrant-bench
    uv run python benchmarks/search_store.py --engine both  # client vs edge, 1k and 10k
    uv run python benchmarks/search_store.py --engine edge --sizes 100000
    uv run python benchmarks/search_store.py --engine both --json results/search_store.json
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_DIR))
sys.path.insert(0, str(REPO_DIR / "benchmarks"))  # _common
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()
logging.getLogger("ragsite").setLevel(logging.WARNING)  # no per-collection INFO lines

import numpy as np  # noqa: E402
from _common import machine, machine_line, write_json  # noqa: E402

from ragsite.rag.edgestore import EdgeEngine, EdgeStore  # noqa: E402
from ragsite.rag.types import Chunk, chunk_id, sha256_text  # noqa: E402
from ragsite.rag.vectorstore import QdrantClient, QdrantStore, memory_client  # noqa: E402

BOOKS = REPO_DIR.parent / "shared" / "books"
DIMENSION = 384
K = 5


def book_words() -> list[str]:
    words: list[str] = []
    for path in sorted(BOOKS.rglob("*.md*")):
        words.extend(re.findall(r"\S+", path.read_text(encoding="utf-8", errors="replace")))
    if not words:
        raise SystemExit(f"no book text under {BOOKS}")
    return words


def make_chunks(words: list[str], n: int, rng: random.Random) -> list[Chunk]:
    chunks = []
    for i in range(n):
        start = rng.randrange(0, len(words) - 150)
        text = " ".join(words[start : start + 150])
        path = f"bench/{i // 20}.md"
        digest = sha256_text(f"{i}\0{text}")
        chunks.append(
            Chunk(
                id=chunk_id(path, digest),
                text=text,
                body=text,
                title="Bench",
                heading="",
                path=path,
                url=None,
                position=i % 20,
                content_hash=digest,
            )
        )
    return chunks


def unit_vectors(n: int, seed: int) -> np.ndarray:
    matrix = np.random.default_rng(seed).standard_normal((n, DIMENSION)).astype(np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


RUNS = [
    ("dense", {"mode": "dense"}),
    ("sparse", {"mode": "sparse"}),
    ("hybrid", {"mode": "hybrid"}),
    ("hybrid + paths", {"mode": "hybrid", "paths": [f"bench/{i}.md" for i in range(3)]}),
]


def open_store(
    engine: str, size: int, *, client_dir: Path | None, edge_dir: Path
) -> tuple[Any, Callable[[], None]]:
    """Return an empty "bench" store on the engine and the function that closes it."""
    if engine == "edge":
        edge = EdgeEngine(edge_dir / f"edge-{size}")
        store: Any = EdgeStore(edge, "bench")
        close = edge.close
    else:
        client = QdrantClient(path=str(client_dir / str(size))) if client_dir else memory_client()
        store = QdrantStore(client, "bench")
        close = client.close
    store.drop()
    store.ensure_collection(dimension=DIMENSION)
    return store, close


def measure(store: Any, queries: list[tuple[str, list[float]]]) -> dict[str, tuple[float, float]]:
    """Return {mode label: (p50 ms, p95 ms)} over the queries."""
    figures = {}
    for label, kwargs in RUNS:
        store.search(query_text=queries[0][0], query_vector=queries[0][1], k=K, **kwargs)
        timings = []
        for text, vector in queries:
            started = time.perf_counter()
            store.search(query_text=text, query_vector=vector, k=K, **kwargs)
            timings.append((time.perf_counter() - started) * 1000)
        figures[label] = (percentile(timings, 50), percentile(timings, 95))
    return figures


def optimize_with_ticker(store: Any) -> tuple[float, int]:
    """Run store.optimize(); return its seconds and how often a 10 ms ticker thread ran.

    The ticker shows whether other Python threads (a server's requests) keep running
    while the engine optimizes.
    """
    ticks = 0
    done = threading.Event()

    def ticker() -> None:
        nonlocal ticks
        while not done.wait(0.01):
            ticks += 1

    thread = threading.Thread(target=ticker)
    thread.start()
    started = time.perf_counter()
    try:
        store.optimize()
    finally:
        seconds = time.perf_counter() - started
        done.set()
        thread.join()
    return seconds, ticks


def bench(
    size: int,
    *,
    words: list[str],
    queries: int,
    client_dir: Path | None,
    edge_dir: Path,
    engines: list[str],
    optimize: bool,
) -> dict[str, Any]:
    """Load `size` chunks into each engine, print the table; return the figures."""
    rng = random.Random(size)
    chunks = make_chunks(words, size, rng)
    vectors = unit_vectors(size, seed=size).tolist()
    query_texts = []
    for _ in range(queries):
        start = rng.randrange(0, len(words) - 6)
        query_texts.append(" ".join(words[start : start + 6]))
    asked = list(zip(query_texts, unit_vectors(queries, seed=size + 1).tolist(), strict=True))

    columns: list[tuple[str, dict[str, tuple[float, float]]]] = []
    notes = []
    result: dict[str, Any] = {"upsert_s": {}, "search_ms": {}}
    for engine in engines:
        store, close = open_store(engine, size, client_dir=client_dir, edge_dir=edge_dir)
        try:
            started = time.perf_counter()
            store.upsert(chunks, vectors)
            result["upsert_s"][engine] = round(time.perf_counter() - started, 2)
            notes.append(f"{engine} upsert {result['upsert_s'][engine]:.1f} s")
            where = "memory" if engine == "client" and not client_dir else "folder"
            columns.append((f"{engine} ({where})", measure(store, asked)))
            result["search_ms"][engine] = columns[-1][1]
            if engine == "edge" and optimize:
                seconds, ticks = optimize_with_ticker(store)
                result["edge_optimize"] = {"seconds": round(seconds, 2), "ticker_ticks": ticks}
                notes.append(
                    f"edge optimize {seconds:.1f} s (a 10 ms ticker thread ticked {ticks} "
                    f"times, ~{seconds / 0.01:.0f} if the GIL were free)"
                )
                columns.append(("edge, optimized", measure(store, asked)))
                result["search_ms"]["edge_optimized"] = columns[-1][1]
        finally:
            close()

    print(f"\n{size} chunks, k={K}, {queries} queries; {', '.join(notes)}")
    print(f"  {'mode':<16}" + "".join(f" {title:>22}" for title, _ in columns))
    print(f"  {'':<16}" + "".join(f" {'p50 ms':>11}{'p95 ms':>11}" for _ in columns))
    for label, _ in RUNS:
        cells = "".join(f" {fig[label][0]:11.1f}{fig[label][1]:11.1f}" for _, fig in columns)
        print(f"  {label:<16}{cells}")
    result["search_ms"] = {
        column: {
            label: {"p50": round(p50, 2), "p95": round(p95, 2)} for label, (p50, p95) in fig.items()
        }
        for column, fig in result["search_ms"].items()
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument(
        "--path",
        type=Path,
        help="a folder for the stores (default: client in memory, edge in a temp folder)",
    )
    parser.add_argument("--engine", choices=["client", "edge", "both"], default="client")
    parser.add_argument("--no-optimize", action="store_true", help="edge: skip the optimize() pass")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    engines = ["client", "edge"] if args.engine == "both" else [args.engine]
    words = book_words()
    info = machine()
    print(machine_line(info))
    figures: dict[str, Any] = {"machine": info, "k": K, "queries": args.queries, "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="ragsite-bench-") as scratch:
        for size in args.sizes:
            figures["sizes"][str(size)] = bench(
                size,
                words=words,
                queries=args.queries,
                # The edge engine always needs a folder; the client gets one only with --path.
                client_dir=args.path,
                edge_dir=args.path or Path(scratch),
                engines=engines,
                optimize=not args.no_optimize,
            )
    if args.json:
        write_json(args.json, figures)


if __name__ == "__main__":
    main()
