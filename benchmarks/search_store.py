"""Search latency of the Qdrant store (no embedder) at a few collection sizes.

Chunks are 150-word windows of the books in ../shared/books (real term statistics for
the sparse half) with random unit 384-d vectors; queries are 6-word windows of the
same text. Prints p50/p95 per mode, in milliseconds.

    uv run python benchmarks/search_store.py                # 1k and 10k, in memory
    uv run python benchmarks/search_store.py --sizes 5000 --path /tmp/qdrant-bench
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402

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


def bench(size: int, *, words: list[str], queries: int, path: Path | None) -> None:
    rng = random.Random(size)
    client = QdrantClient(path=str(path / str(size))) if path else memory_client()
    store = QdrantStore(client, "bench")
    store.drop()
    store.ensure_collection(dimension=DIMENSION)
    chunks = make_chunks(words, size, rng)
    vectors = unit_vectors(size, seed=size)
    started = time.perf_counter()
    store.upsert(chunks, vectors.tolist())
    upsert_s = time.perf_counter() - started

    query_texts = []
    for _ in range(queries):
        start = rng.randrange(0, len(words) - 6)
        query_texts.append(" ".join(words[start : start + 6]))
    query_vectors = unit_vectors(queries, seed=size + 1).tolist()
    some_paths = [f"bench/{i}.md" for i in range(3)]

    print(f"\n{size} chunks ({'folder' if path else 'memory'}), upsert {upsert_s:.1f} s, k={K}")
    print(f"  {'mode':<18} {'p50 ms':>8} {'p95 ms':>8}")
    runs = [
        ("dense", {"mode": "dense"}),
        ("sparse", {"mode": "sparse"}),
        ("hybrid", {"mode": "hybrid"}),
        ("hybrid + paths", {"mode": "hybrid", "paths": some_paths}),
    ]
    for label, kwargs in runs:
        store.search(query_text=query_texts[0], query_vector=query_vectors[0], k=K, **kwargs)
        timings = []
        for text, vector in zip(query_texts, query_vectors, strict=True):
            started = time.perf_counter()
            store.search(query_text=text, query_vector=vector, k=K, **kwargs)
            timings.append((time.perf_counter() - started) * 1000)
        print(f"  {label:<18} {percentile(timings, 50):8.1f} {percentile(timings, 95):8.1f}")
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--path", type=Path, help="a folder for the store (default: memory)")
    args = parser.parse_args()
    words = book_words()
    for size in args.sizes:
        bench(size, words=words, queries=args.queries, path=args.path)


if __name__ == "__main__":
    main()
