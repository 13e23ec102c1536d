"""`GET /api/search` latency over HTTP at 1k / 10k / 100k chunks, on a real server.

What runs: for each size a fresh data folder is filled through the store interface
(`providers.get_store()`, so whatever VECTOR_ENGINE selects), then `manage.py serve
--ingest never` serves it on 127.0.0.1 and one client asks the textbook's reader
questions one after another (no concurrency: this is latency, not load). The server
embeds every query with the real packaged model and runs the real hybrid search, the
score floor and the de-duplication, exactly as for a reader.

What the chunks are: 150-word windows of the two real books in ../shared/books
(the Rust book and the robotics textbook), text laid out as ingestion does
("title > heading" line, then the body). The first 1,000 windows get real embeddings
from the packaged model (about 47 chunks/s on 2 cores, so 100k real embeddings would
take over half an hour). Larger sizes re-use them: chunk i is window i mod 1000 with
about 10% of its words dropped (so the sparse index sees distinct texts with real term
statistics) and the real vector of that window plus a little noise, renormalised
(cosine ≈ 0.95 to the original). Scores therefore look like real ones and the score
floor keeps a realistic number of hits, which random vectors would not.

Beside the HTTP figures, the builder process times the parts alone, without HTTP:
embedding one query, the store's hybrid search, and the whole retrieval service
(`book_search`: embed + search + score floor + de-duplication, with its thread hops).

The run is bounded: at most --queries timed queries per size, and no more than
--budget-s seconds of querying per size (qdrant-client's local mode takes seconds per
hybrid query at 100k, so that size gets only a few queries; the count is printed).

    uv run python benchmarks/search_api.py                       # 1k, 10k, 100k
    uv run python benchmarks/search_api.py --sizes 1000 10000 --json /tmp/search.json
    uv run python benchmarks/search_api.py --engine qdrant-local --engine qdrant-edge
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    REPO_DIR,
    RUST_BOOK_DIR,
    TEXTBOOK_DIR,
    book_words,
    fmt_ms,
    load_average,
    machine,
    machine_line,
    running_server,
    server_env,
    summary,
    textbook_questions,
    write_json,
)

DEFAULT_SIZES = [1000, 10000, 100000]
REAL_CHUNKS = 1000  # chunks with real embeddings; larger sizes re-use these
WINDOW_WORDS = 150  # ~200 model tokens, the median chunk of a real book at CHUNK_TOKENS=256
DROP_FRACTION = 0.1  # words dropped from a re-used window
NOISE = 0.3  # norm of the noise added to a re-used vector (cosine ≈ 0.95 to the original)
CHUNKS_PER_PAGE = 20
SYNTHETIC_TITLE = "Synthetic book"
K = 5
WARMUP_QUERIES = 3
DIMENSION = 384
BUILD_BATCH = 2000

# Questions a Rust book reader would ask, beside the textbook's question set.
RUST_QUESTIONS = [
    "What is ownership in Rust and why does it matter?",
    "How do I borrow a value mutably?",
    "What is the difference between String and &str?",
    "How do lifetimes prevent dangling references?",
    "How does the match expression handle enums?",
    "What does the question mark operator do with Result?",
    "How do I spawn a thread and wait for it to finish?",
    "What are traits and how do I implement one?",
    "When should I use Box, Rc or RefCell?",
    "How do I write a test with cargo test?",
    "What does unsafe allow me to do?",
    "How do closures capture their environment?",
]


# --- building a collection (runs in a subprocess per size) --------------------------------


def _base_windows(words: list[str]) -> list[str]:
    """REAL_CHUNKS distinct windows spread evenly over the books."""
    stride = max(WINDOW_WORDS, (len(words) - WINDOW_WORDS) // REAL_CHUNKS)
    return [" ".join(words[i * stride : i * stride + WINDOW_WORDS]) for i in range(REAL_CHUNKS)]


def synthetic_texts(size: int, words: list[str]) -> list[tuple[str, str, str, int]]:
    """(path, heading, body, base index) for `size` chunks, deterministic."""
    bases = _base_windows(words)
    items = []
    for i in range(size):
        base = i % REAL_CHUNKS
        body = bases[base]
        if i >= REAL_CHUNKS:
            rng = random.Random(i)
            kept = [word for word in body.split() if rng.random() >= DROP_FRACTION]
            body = " ".join(kept)
        items.append((f"synthetic/page-{i // CHUNKS_PER_PAGE:05d}.md", f"Section {i}", body, base))
    return items


def _build(data_dir: Path, size: int, queries: list[str], budget_s: float) -> None:
    """Fill the configured store with `size` synthetic chunks and time the store alone."""
    import os

    import django

    sys.path.insert(0, str(REPO_DIR))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")
    django.setup()
    import numpy as np
    from django.core.management import call_command

    from ragsite.rag import providers

    # The data folder's database, as the server's: `book_search` reads the candidates'
    # stored sentence vectors from it (none here), which failed on a missing table.
    call_command("migrate", interactive=False, verbosity=0)
    from ragsite.rag.types import Chunk, chunk_id, sha256_text

    words = book_words(RUST_BOOK_DIR, TEXTBOOK_DIR)
    cache = data_dir.parent / "real_vectors.npy"
    embedder = providers.get_embedder()
    items = synthetic_texts(max(size, REAL_CHUNKS), words)
    chunks = []
    for i, (path, heading, body, _) in enumerate(items):
        text = f"{SYNTHETIC_TITLE} > {heading}\n{body}"
        digest = sha256_text(text)
        chunks.append(
            Chunk(
                id=chunk_id(path, digest),
                text=text,
                body=body,
                title=SYNTHETIC_TITLE,
                heading=heading,
                path=path,
                url=None,
                position=i % CHUNKS_PER_PAGE,
                content_hash=digest,
                token_count=0,
            )
        )
    report: dict[str, Any] = {}
    if cache.exists():
        base_vectors = np.load(cache)
    else:
        # The same REAL_CHUNKS texts start every size, so their vectors are computed
        # once per run and shared by all sizes and engines.
        started = time.perf_counter()
        base_vectors = np.array(
            embedder.embed_sync([chunk.text for chunk in chunks[:REAL_CHUNKS]]), dtype=np.float32
        )
        report["embed_real_s"] = round(time.perf_counter() - started, 1)
        np.save(cache, base_vectors)
    chunks, items = chunks[:size], items[:size]
    vectors = base_vectors[[base for *_, base in items]].copy()
    if size > REAL_CHUNKS:
        noise = np.random.default_rng(size).standard_normal((size - REAL_CHUNKS, DIMENSION))
        noise *= NOISE / np.sqrt(DIMENSION)
        vectors[REAL_CHUNKS:] += noise.astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)

    store = providers.get_store()
    store.drop()
    store.ensure_collection(dimension=DIMENSION)
    started = time.perf_counter()
    for start in range(0, size, BUILD_BATCH):
        store.upsert(
            chunks[start : start + BUILD_BATCH], vectors[start : start + BUILD_BATCH].tolist()
        )
        if size >= 10 * BUILD_BATCH and (start // BUILD_BATCH) % 10 == 9:
            print(f"    upserted {start + BUILD_BATCH:,} of {size:,}", file=sys.stderr, flush=True)
    report["upsert_s"] = round(time.perf_counter() - started, 1)
    report["points"] = store.count()

    # The two halves of a request, each alone and in this process: embedding the
    # query, and the store's hybrid search at this size (as book_search calls it).
    embed_ms, store_ms = [], []
    query_vectors = []
    for question in queries[:20]:
        started = time.perf_counter()
        [vector] = embedder.embed_sync([question])
        embed_ms.append((time.perf_counter() - started) * 1000)
        query_vectors.append(vector)
    deadline = time.monotonic() + budget_s
    fetch = 20  # book_search asks the store for max(20, 4k) candidates
    store.search(query_text=queries[0], query_vector=query_vectors[0], k=fetch, mode="hybrid")
    for i, question in enumerate(queries):
        if time.monotonic() > deadline:
            break
        started = time.perf_counter()
        store.search(
            query_text=question,
            query_vector=query_vectors[i % len(query_vectors)],
            k=fetch,
            mode="hybrid",
        )
        store_ms.append((time.perf_counter() - started) * 1000)
    report["embed_ms"] = summary(embed_ms)
    report["store_hybrid_ms"] = summary(store_ms)
    # The whole retrieval service in-process (embed + search + floor + de-duplication,
    # with its thread hops), so HTTP − book_search is what the web stack adds.
    report["book_search_ms"] = summary(asyncio.run(_book_search_timings(queries, budget_s / 2)))
    providers.reset()  # closes the client: the server opens the folder next
    print(json.dumps(report))


async def _book_search_timings(queries: list[str], budget_s: float) -> list[float]:
    from chat.services import book_search

    await book_search(query=queries[0], k=K)
    timings = []
    deadline = time.monotonic() + budget_s
    for question in queries:
        if time.monotonic() > deadline:
            break
        started = time.perf_counter()
        await book_search(query=question, k=K)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def _build_in_subprocess(
    *, data_dir: Path, size: int, engine: str | None, queries_file: Path, budget_s: float
) -> dict[str, Any]:
    env = server_env(data_dir=data_dir, book_dir=data_dir / "empty-book", extra=_engine_env(engine))
    command = [
        sys.executable,
        __file__,
        "--build",
        str(data_dir),
        "--sizes",
        str(size),
        "--queries-file",
        str(queries_file),
        "--budget-s",
        str(budget_s),
    ]
    result = subprocess.run(  # noqa: S603 - this script, fixed arguments
        command, cwd=REPO_DIR, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"building {size} chunks failed:\n{result.stderr[-3000:]}")
    sys.stderr.write(result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _engine_env(engine: str | None) -> dict[str, str]:
    return {"VECTOR_ENGINE": engine} if engine else {}


# --- measuring over HTTP -------------------------------------------------------------------


def http_latencies(
    url: str, queries: list[str], *, limit: int, budget_s: float
) -> tuple[list[float], list[int], int]:
    """Ask /api/search each query in turn; return ms per request, hits each, errors."""
    timings: list[float] = []
    hits: list[int] = []
    errors = 0
    with httpx.Client(base_url=url, timeout=120.0) as client:
        # Warm with the last queries: the timed ones start from the first, so none of
        # them is already in the embedder's memory of recent queries.
        for question in queries[-WARMUP_QUERIES:]:  # loads the model, warms the caches
            client.get("/api/search", params={"q": question, "k": K})
        deadline = time.monotonic() + budget_s
        for i in range(limit):
            if time.monotonic() > deadline:
                break
            question = queries[i % len(queries)]
            started = time.perf_counter()
            response = client.get("/api/search", params={"q": question, "k": K})
            body = response.content
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                errors += 1
                continue
            timings.append(elapsed)
            hits.append(len(json.loads(body)["results"]))
    return timings, hits, errors


def bench_size(
    *, size: int, engine: str | None, work: Path, queries: list[str], limit: int, budget_s: float
) -> dict[str, Any]:
    """Build, serve and measure one collection size with one engine."""
    label = engine or "default"
    data_dir = work / f"{label}-{size}"
    (data_dir / "empty-book").mkdir(parents=True, exist_ok=True)
    queries_file = work / "queries.json"
    print(f"\n{size:,} chunks, engine {label}: building…", flush=True)
    built = _build_in_subprocess(
        data_dir=data_dir, size=size, engine=engine, queries_file=queries_file, budget_s=budget_s
    )
    load_before = load_average()
    with running_server(
        data_dir=data_dir,
        book_dir=data_dir / "empty-book",
        ingest="never",
        extra_env=_engine_env(engine),
        timeout=600.0,
    ) as server:
        at_start = server.memory()
        timings, hits, errors = http_latencies(server.url, queries, limit=limit, budget_s=budget_s)
        after = server.memory()
    result = {
        "size": size,
        "engine": label,
        "points": built["points"],
        "upsert_s": built["upsert_s"],
        "server_start_s": server.started_s,
        "http_ms": summary(timings),
        "embed_ms": built["embed_ms"],
        "store_hybrid_ms": built["store_hybrid_ms"],
        "book_search_ms": built.get("book_search_ms"),
        "hits_mean": round(sum(hits) / len(hits), 2) if hits else None,
        "errors": errors,
        "server_rss_mb": {
            "at_start": at_start["rss_mb"],
            "after": after["rss_mb"],
            "peak": after["hwm_mb"],
        },
        "load_average": load_before,
    }
    if "embed_real_s" in built:
        result["embed_real_s"] = built["embed_real_s"]
    http = result["http_ms"]
    print(
        f"  {built['points']:,} points, upsert {built['upsert_s']} s, server up in {server.started_s} s, "
        f"RSS {after['rss_mb']} MB (peak {after['hwm_mb']} MB)"
    )
    print(
        f"  /api/search k={K}: p50 {fmt_ms(http['p50'])} ms, p95 {fmt_ms(http['p95'])} ms "
        f"over {http['n']} queries ({errors} errors), {result['hits_mean']} hits each"
    )
    print(
        f"  alone in-process: embed p50 {fmt_ms(built['embed_ms']['p50'])} ms, "
        f"store hybrid p50 {fmt_ms(built['store_hybrid_ms']['p50'])} ms "
        f"({built['store_hybrid_ms']['n']} queries), "
        f"book_search p50 {fmt_ms(built['book_search_ms']['p50'])} ms"
    )
    return result


def print_table(results: list[dict[str, Any]]) -> None:
    """The figures as one table (embed, store, service: p50 in-process, no HTTP)."""
    print(
        f"\n{'engine':<14} {'chunks':>8} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'embed':>7} {'store':>7} {'service':>8} {'RSS MB':>7}"
    )
    for row in results:
        http = row["http_ms"]
        service = (row.get("book_search_ms") or {}).get("p50")
        print(
            f"{row['engine']:<14} {row['size']:>8,} {http['n']:>4} {fmt_ms(http['p50']):>8} "
            f"{fmt_ms(http['p95']):>8} {fmt_ms(row['embed_ms']['p50']):>7} "
            f"{fmt_ms(row['store_hybrid_ms']['p50']):>7} {fmt_ms(service):>8} "
            f"{row['server_rss_mb']['after'] or 0:>7.0f}"
        )


def main() -> None:
    """Parse the options; build and measure each size and engine (or be the builder)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=DEFAULT_SIZES)
    parser.add_argument(
        "--queries", type=int, default=100, help="timed queries per size at most (default 100)"
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=60.0,
        help="seconds of querying per size at most (default 60)",
    )
    parser.add_argument(
        "--engine",
        action="append",
        help="VECTOR_ENGINE to measure (repeat for several); default: the configured one",
    )
    parser.add_argument(
        "--json", dest="json_out", metavar="OUT", help="write the figures to this file"
    )
    parser.add_argument(
        "--keep", type=Path, help="build in this folder and keep it (default: a temp folder)"
    )
    parser.add_argument(
        "--build", type=Path, help=argparse.SUPPRESS
    )  # internal: the builder subprocess
    parser.add_argument("--queries-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.build:
        queries = json.loads(args.queries_file.read_text())
        _build(args.build, args.sizes[0], queries, args.budget_s)
        return

    info = machine()
    print(machine_line(info))
    queries = textbook_questions() + RUST_QUESTIONS
    random.Random(7).shuffle(queries)
    engines = args.engine or [None]
    results = []
    with tempfile.TemporaryDirectory(prefix="ragsite-bench-search-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        (work / "queries.json").write_text(json.dumps(queries))
        for size in sorted(args.sizes):
            for engine in engines:
                results.append(
                    bench_size(
                        size=size,
                        engine=engine,
                        work=work,
                        queries=queries,
                        limit=args.queries,
                        budget_s=args.budget_s,
                    )
                )
    print_table(results)
    print(machine_line())
    if args.json_out:
        write_json(
            args.json_out,
            {
                "benchmark": "search_api",
                "machine": info,
                "load_average_end": load_average(),
                "k": K,
                "chunks": (
                    f"{WINDOW_WORDS}-word windows of the Rust book and the robotics textbook; "
                    f"the first {REAL_CHUNKS} with real embeddings, larger sizes re-use them "
                    f"({int(DROP_FRACTION * 100)}% of words dropped, vector + noise, cosine ≈ 0.95)"
                ),
                "queries": len(queries),
                "budget_s": args.budget_s,
                "results": results,
            },
        )


if __name__ == "__main__":
    main()
