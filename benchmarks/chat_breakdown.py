"""Where a chat answer's time goes before `sources`, with N answers at once, in-process.

chat_load.py measures from outside, over HTTP. This runs the same service
(`chat.services.answer_stream`, the real embedder, store and extractive model, SQLite)
inside this process on an already indexed data folder, N answers concurrently on one
event loop as uvicorn would, and times the parts of each answer:

- `meta`: from the start to the `meta` event (session and message rows in SQLite,
  written from the answer's own sync thread, as under Django's ASGI handler);
- embed: waiting for a worker thread + running the ONNX model on the query;
- search: waiting for a worker thread + the store's hybrid search (in local mode
  this includes waiting for the store's lock: one search at a time);
- `sources`: from the start to the `sources` event;
- event-loop lag: how late a 5 ms ticker wakes up; the loop is blocked by code that
  runs on it (packing sources, counting tokens, the extractive answer, JSON).

Without --data (or with an empty folder) the book is ingested first, in this process.
A folder given with --data must not be in use by a server (the embedded store is
single-process); `chat_load.py --data DIR` leaves an indexed one behind.

    uv run python benchmarks/chat_breakdown.py                          # ingests the textbook
    uv run python benchmarks/chat_breakdown.py --data /tmp/bench-chat --streams 1 50 --profile
    uv run python benchmarks/chat_breakdown.py --data /tmp/bench-chat --cpu

`--cpu` measures something else: the process CPU (every thread) per answer, one answer
at a time, right after the start-up warming `manage.py serve` does (`caches_warm`):
each question of the set fresh, then the same questions again. A short burst of fresh
questions is what a server just started (or just scaled up) meets first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import cProfile
import itertools
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    REPO_DIR,
    TEXTBOOK_DIR,
    fmt_ms,
    load_average,
    machine,
    machine_line,
    server_env,
    summary,
    textbook_questions,
    write_json,
)

TICK_S = 0.005
# The timings of the answer the current task is producing (a dict per answer).
_marks: contextvars.ContextVar[dict[str, float]] = contextvars.ContextVar("marks")


def _add(name: str, seconds: float) -> None:
    marks = _marks.get(None)
    if marks is not None:
        marks[name] = marks.get(name, 0.0) + seconds * 1000


class TimedEmbedder:
    """The real embedder; records thread wait and model time of each call."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.provider, self.model, self.dimension = inner.provider, inner.model, inner.dimension

    def embed_sync(self, texts: Sequence[str]) -> list[list[float]]:
        """The inner embed_sync, its time added to the current answer's `embed_run`."""
        started = time.perf_counter()
        try:
            return self.inner.embed_sync(texts)
        finally:
            _add("embed_run", time.perf_counter() - started)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """embed_sync in the default thread pool; the wait + run goes to `embed_total`."""
        # As LocalEmbedder.embed: the model runs in the default thread pool.
        started = time.perf_counter()
        try:
            return await asyncio.to_thread(self.embed_sync, texts)
        finally:
            _add("embed_total", time.perf_counter() - started)


class TimedStore:
    """The real store; records the time inside `search` (incl. its lock) per call."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def search(self, **kwargs: Any) -> Any:
        """The inner search, timed (`search_run`) and its end marked (`search_end`)."""
        started = time.perf_counter()
        try:
            return self.inner.search(**kwargs)
        finally:
            _add("search_run", time.perf_counter() - started)
            marks = _marks.get(None)
            if marks is not None:
                marks["search_end"] = (time.perf_counter() - marks["t0"]) * 1000

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def _ticker(lags: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(TICK_S)
        lags.append((time.perf_counter() - before - TICK_S) * 1000)


async def run(streams: int, questions: list[str], parts: dict[str, Any]) -> dict[str, Any]:
    """`streams` answers at once (each from the start); the timings of their parts."""
    from asgiref.sync import ThreadSensitiveContext

    from chat.services import answer_stream

    cycle = itertools.cycle(questions)

    async def one(question: str) -> dict[str, float]:
        marks = {"t0": time.perf_counter()}
        _marks.set(marks)
        # As Django's ASGI handler does per request: the answer's sync_to_async calls
        # (SQLite) get a thread of their own instead of the process-wide one.
        async with ThreadSensitiveContext():
            async for event in answer_stream(message=question, **parts):
                marks.setdefault(event.name, (time.perf_counter() - marks["t0"]) * 1000)
                if event.name == "token":
                    marks["token_events"] = marks.get("token_events", 0) + 1
        return marks

    lags: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(_ticker(lags, stop))
    started = time.perf_counter()
    results = await asyncio.gather(*(one(next(cycle)) for _ in range(streams)))
    wall = time.perf_counter() - started
    stop.set()
    await ticker

    def values(key: str) -> list[float]:
        return [r[key] for r in results if key in r]

    embed_wait = [r["embed_total"] - r["embed_run"] for r in results if "embed_total" in r]
    return {
        "streams": streams,
        "wall_s": round(wall, 2),
        "meta_ms": summary(values("meta")),
        "embed_wait_ms": summary(embed_wait),
        "embed_run_ms": summary(values("embed_run")),
        "search_run_ms": summary(values("search_run")),
        "search_end_ms": summary(values("search_end")),
        "sources_ms": summary(values("sources")),
        "first_token_ms": summary(values("token")),
        "done_ms": summary(values("done")),
        "token_events": summary([r.get("token_events", 0) for r in results]),
        "loop_lag_ms": {**summary(lags), "total": round(sum(lags), 1)},
        "load_average": load_average(),
    }


def print_run(row: dict[str, Any]) -> None:
    """One run's parts, p50 / p95 / max."""
    print(
        f"\n{row['streams']} answers at once, {row['wall_s']} s in all (load {row['load_average'][0]})"
    )
    for label, key in (
        ("meta (SQLite rows)", "meta_ms"),
        ("embed: thread wait", "embed_wait_ms"),
        ("embed: model", "embed_run_ms"),
        ("search (incl. lock)", "search_run_ms"),
        ("search done at", "search_end_ms"),
        ("sources at", "sources_ms"),
        ("first token at", "first_token_ms"),
        ("done at", "done_ms"),
        ("event-loop lag", "loop_lag_ms"),
    ):
        figures = row[key]
        print(
            f"  {label:<22} p50 {fmt_ms(figures['p50']):>7}  p95 {fmt_ms(figures['p95']):>7}  "
            f"max {fmt_ms(figures['max']):>7} ms"
        )
    print(
        f"  event loop blocked {row['loop_lag_ms']['total']:.0f} ms in all (5 ms ticker lateness)"
    )
    events = row["token_events"]
    print(f"  token events per answer p50 {events['p50']:.0f}, max {events['max']:.0f}")


async def cpu_per_answer(questions: list[str]) -> dict[str, Any]:
    """Process CPU per answer (every thread), one answer at a time with the configured
    providers: each question fresh, then the same questions again."""
    from chat.services import answer_collect

    figures: dict[str, Any] = {"questions": len(questions)}
    for label in ("fresh", "again"):
        started = time.process_time()
        for question in questions:
            await answer_collect(message=question)
        figures[f"{label}_cpu_ms"] = round(
            (time.process_time() - started) * 1000 / len(questions), 2
        )
    return figures


def _ensure_index(book: Path) -> None:
    """Migrate, and ingest the book when the store is empty (a fresh folder)."""
    from django.core.management import call_command

    from ingestion.services import book_ingest
    from ragsite.rag import providers

    call_command("migrate", interactive=False, verbosity=0)
    if providers.get_store().count() == 0:
        started = time.perf_counter()
        task = book_ingest(book_dir=book, source="manage.py")
        print(f"ingested {book.name}: {task.status} in {time.perf_counter() - started:.0f} s")


def measure(args: argparse.Namespace, data_dir: Path) -> None:
    """Set Django up on `data_dir` (already in the environment), index, run each level."""
    sys.path.insert(0, str(REPO_DIR))
    import django

    django.setup()
    from ragsite.rag import providers

    info = machine()
    print(machine_line(info))
    _ensure_index(args.book.resolve())
    parts = {
        "embedder": TimedEmbedder(providers.get_embedder()),
        "store": TimedStore(providers.get_store()),
        "llm": providers.get_chat_model(),
        "fallback_llm": providers.get_extractive_model(),
    }
    points = parts["store"].count()
    threads = min(32, (os.cpu_count() or 1) + 4)
    print(f"{points} points in {data_dir}, default thread pool {threads} threads")
    questions = textbook_questions()

    def record(**figures: Any) -> None:
        if args.json_out:
            write_json(
                args.json_out,
                {"benchmark": "chat_breakdown", "machine": info, "points": points, **figures},
            )

    if args.cpu:
        from chat.services.warming import caches_warm

        warmed = caches_warm()
        figures = asyncio.run(cpu_per_answer(questions))
        print(
            f"after warming ({warmed.get('seconds')} s), one answer at a time: process CPU "
            f"{figures['fresh_cpu_ms']} ms per answer for {len(questions)} fresh questions, "
            f"{figures['again_cpu_ms']} ms asked again"
        )
        providers.reset()
        record(warmed=warmed, cpu_per_answer=figures)
        return

    async def all_runs() -> list[dict[str, Any]]:
        await run(3, questions, parts)  # warm-up: model, tokenizer, connections
        rows = []
        for i, streams in enumerate(args.streams):
            profiler = None
            if args.profile and i == len(args.streams) - 1:
                # cProfile sees this thread only: the event loop, where blocking hurts.
                profiler = cProfile.Profile()
                profiler.enable()
            row = await run(streams, questions, parts)
            if profiler is not None:
                profiler.disable()
                print(f"\nevent-loop thread, {streams} answers at once: top functions by own time")
                pstats.Stats(profiler).sort_stats("tottime").print_stats(18)
            print_run(row)
            rows.append(row)
        return rows

    rows = asyncio.run(all_runs())
    providers.reset()
    record(engine=args.engine or "default", thread_pool=threads, runs=rows)


def main() -> None:
    """Parse the options and measure on the given (or a temporary) data folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, help="a RAGSITE_DATA_DIR to use (default: a temporary one, ingested)"
    )
    parser.add_argument("--book", type=Path, default=TEXTBOOK_DIR, help="the book to index")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--engine", help="VECTOR_ENGINE (default: the configured one)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile the event-loop thread during the last run (cProfile, top functions)",
    )
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="instead: process CPU per answer, fresh and again, after the start-up warming",
    )
    parser.add_argument(
        "--json", dest="json_out", metavar="OUT", help="write the figures to this file"
    )
    args = parser.parse_args()

    extra = {"VECTOR_ENGINE": args.engine} if args.engine else {}
    with tempfile.TemporaryDirectory(prefix="ragsite-bench-breakdown-") as tmp:
        data_dir = (args.data or Path(tmp)).resolve()
        env = server_env(data_dir=data_dir, book_dir=args.book.resolve(), extra=extra)
        os.environ.update(env)
        measure(args, data_dir)


if __name__ == "__main__":
    main()
