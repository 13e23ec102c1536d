"""Chat streams under load: time to `sources` and to the first `token` at 1/10/50/200 streams.

What runs: a real `manage.py serve` on 127.0.0.1 with a fresh data folder ingests the
book (the robotics textbook by default) with the packaged embedding model, answers
with the offline extractive default (no LLM), and this script opens N concurrent
`POST /api/chat` streams (httpx.AsyncClient reading the SSE events). Each of the N
clients asks the book's reader questions one after another (a closed loop), so there
are always N streams open until the level's request count or time budget is used up.
Each request is a new conversation. Rate limits are raised for the run.

For every stream it records the time from sending the request to the `meta`,
`sources`, first `token` and `done` events; errors are non-200 answers, `error`
events, broken connections and timeouts. Server memory (VmRSS/VmHWM from /proc) is
read at rest after ingestion and sampled during each level; the peak is the highest.

This client runs on the same 2 cores as the server, so its own CPU time is printed
too: at 200 streams it is part of the load.

`--open-loop RATE` replaces the levels with an open loop: questions arrive at random
(a Poisson process, seeded by `--seed`) at RATE per second for `--duration` seconds,
whether or not the earlier ones are answered, as readers would. Each time is measured
from the question's scheduled arrival, so a client that falls behind shows up in the
figures instead of hiding the wait (coordinated omission). It stops by itself: no new
question after the duration, and every stream is cut at the request timeout.

    uv run python benchmarks/chat_load.py                        # 1, 10, 50, 200 streams
    uv run python benchmarks/chat_load.py --levels 1 50 --json /tmp/chat.json
    uv run python benchmarks/chat_load.py --book docs            # the project's own docs
    uv run python benchmarks/chat_load.py --open-loop 10 --duration 60   # 10 questions/s, 1 min
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    REPO_DIR,
    TEXTBOOK_DIR,
    fmt_ms,
    index_summary,
    ingestion_wait,
    load_average,
    machine,
    machine_line,
    process_cpu_s,
    process_memory_mb,
    reset_peak_memory,
    running_server,
    summary,
    textbook_questions,
    write_json,
)

DEFAULT_LEVELS = [1, 10, 50, 200]
TARGET_STREAMS = 50
TARGET_SOURCES_P95_MS = 100.0
REQUEST_TIMEOUT_S = 120.0
MEMORY_SAMPLE_S = 0.1
WARMUP_REQUESTS = 3
STREAMS_PER_CLIENT = 25  # streams per httpx connection pool (see run_level)
# The open loop's targets (issue 13) and bounds: it always stops by itself.
OPEN_LOOP_SOURCES_P95_MS = 100.0
OPEN_LOOP_FIRST_TOKEN_P95_MS = 150.0
OPEN_LOOP_MAX_DURATION_S = 600.0
OPEN_LOOP_MAX_REQUESTS = 10_000
OPEN_LOOP_SEED = 13

# Questions about the project's own docs (used with --book docs).
DOCS_QUESTIONS = [
    "How do I add the chat widget to my book site?",
    "What happens when the index is empty at start-up?",
    "Which embedding model does ragsite use by default?",
    "Why can only one process open the embedded vector store?",
    "How are chunks cut from a page?",
    "What does the sources event contain?",
    "How does the rate limit work?",
    "How do I switch to OpenAI embeddings?",
    "What is the score floor and how was it chosen?",
    "How do I deploy ragsite on Hugging Face Spaces?",
    "What does an unchanged re-ingest cost?",
    "How are follow-up questions rewritten?",
]


@dataclass
class Stream:
    """What one chat request saw, in milliseconds from sending it."""

    meta: float | None = None
    sources: float | None = None
    first_token: float | None = None
    done: float | None = None
    error: str | None = None
    tokens: int = 0


async def chat_once(
    client: httpx.AsyncClient, question: str, *, started: float | None = None
) -> Stream:
    """Send one chat request and time its events from `started` (perf_counter; default now)."""
    result = Stream()
    if started is None:
        started = time.perf_counter()

    def now() -> float:
        return (time.perf_counter() - started) * 1000

    event = ""
    try:
        async with client.stream("POST", "/api/chat", json={"message": question}) as response:
            if response.status_code != 200:
                await response.aread()
                result.error = f"http {response.status_code}"
                return result
            event = "headers"
            async for line in response.aiter_lines():
                if not line.startswith("event: "):
                    continue
                event = line[7:].strip()
                if event == "meta":
                    result.meta = now()
                elif event == "sources":
                    result.sources = now()
                elif event == "token":
                    result.tokens += 1
                    if result.first_token is None:
                        result.first_token = now()
                elif event == "done":
                    result.done = now()
                elif event == "error":
                    result.error = "error event"
            if result.done is None and result.error is None:
                result.error = f"stream ended after {event or 'nothing'}"
    except httpx.TimeoutException:
        result.error = "timeout"
    except httpx.HTTPError as exc:
        # Where it broke tells a refused or reset connection (before any response)
        # from a stream cut in the middle.
        result.error = f"{type(exc).__name__} after {event or 'nothing'}"
    return result


async def _sample_memory(pid: int, peak: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        rss = process_memory_mb(pid)["rss_mb"]
        if rss is not None:
            peak[0] = max(peak[0], rss)
        try:
            await asyncio.wait_for(stop.wait(), MEMORY_SAMPLE_S)
        except TimeoutError:
            pass


def _completed(results: list[Stream]) -> int:
    return sum(1 for r in results if r.done is not None and r.error is None)


def _cpu_ms_per_answer(pid: int, before: float | None, *, completed: int) -> float | None:
    """The server's CPU time (all its threads) per completed answer since `before`."""
    after = process_cpu_s(pid)
    if before is None or after is None or not completed:
        return None
    return round((after - before) * 1000 / completed, 1)


async def run_level(
    *, url: str, pid: int, streams: int, requests: int, budget_s: float, questions: list[str]
) -> dict[str, Any]:
    """Keep `streams` chat streams open until `requests` are done or the budget is spent."""
    remaining = [requests]
    results: list[Stream] = []
    cycle = itertools.cycle(questions)
    deadline = time.monotonic() + budget_s
    # httpcore's pool scans all its connections for every request: one pool of 200 made
    # this client the bottleneck (its CPU 3-4x, the server idle waiting for it). Pools of
    # at most STREAMS_PER_CLIENT streams keep that cost flat.
    pools = math.ceil(streams / STREAMS_PER_CLIENT)
    size = math.ceil(streams / pools)
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    timeout = httpx.Timeout(REQUEST_TIMEOUT_S, connect=30.0)

    async def worker(client: httpx.AsyncClient) -> None:
        while remaining[0] > 0 and time.monotonic() < deadline:
            remaining[0] -= 1
            results.append(await chat_once(client, next(cycle)))

    reset = reset_peak_memory(pid)
    rest = process_memory_mb(pid)["rss_mb"] or 0.0
    peak = [rest]
    stop = asyncio.Event()
    load_before = load_average()
    cpu_before = time.process_time()
    server_cpu_before = process_cpu_s(pid)
    started = time.perf_counter()
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout)
            )
            for _ in range(pools)
        ]
        sampler = asyncio.create_task(_sample_memory(pid, peak, stop))
        await asyncio.gather(*(worker(clients[n % pools]) for n in range(streams)))
        stop.set()
        await sampler
    wall = time.perf_counter() - started
    server_cpu = _cpu_ms_per_answer(pid, server_cpu_before, completed=_completed(results))
    memory = process_memory_mb(pid)
    peak_mb = max(peak[0], memory["hwm_mb"] or 0.0) if reset else peak[0]

    def times(name: str) -> list[float]:
        return _times(results, name)

    errors = _errors(results)
    completed = _completed(results)
    return {
        "streams": streams,
        "requests": len(results),
        "completed": completed,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "wall_s": round(wall, 2),
        "answers_per_s": round(completed / wall, 2) if wall else None,
        "meta_ms": summary(times("meta")),
        "sources_ms": summary(times("sources")),
        "first_token_ms": summary(times("first_token")),
        "done_ms": summary(times("done")),
        "tokens_mean": round(sum(r.tokens for r in results) / len(results), 1) if results else None,
        "server_rss_mb": {"before": rest, "peak": peak_mb, "after": memory["rss_mb"]},
        "server_cpu_ms_per_answer": server_cpu,
        "client_cpu_s": round(time.process_time() - cpu_before, 2),
        "load_average": load_before,
    }


def arrival_schedule(*, rate: float, duration_s: float, seed: int) -> list[float]:
    """Seconds from the start at which questions arrive: a Poisson process of `rate` per second.

    The gaps are exponential with mean 1/rate, drawn from a generator seeded with `seed`,
    so a run can be repeated; every arrival falls inside [0, duration_s).
    """
    if rate <= 0 or duration_s <= 0:
        raise ValueError("the rate and the duration must be positive")
    draw = random.Random(seed)
    arrivals: list[float] = []
    at = draw.expovariate(rate)
    while at < duration_s:
        arrivals.append(at)
        at += draw.expovariate(rate)
    return arrivals


def _errors(results: list[Stream]) -> dict[str, int]:
    errors: dict[str, int] = {}
    for r in results:
        if r.error:
            errors[r.error] = errors.get(r.error, 0) + 1
    return errors


def _times(results: list[Stream], name: str) -> list[float]:
    return [getattr(r, name) for r in results if getattr(r, name) is not None and r.error is None]


async def run_open_loop(
    *, url: str, pid: int, rate: float, duration_s: float, seed: int, questions: list[str]
) -> dict[str, Any]:
    """Send questions at the arrival times of `arrival_schedule`, each on its own stream."""
    arrivals = arrival_schedule(rate=rate, duration_s=duration_s, seed=seed)
    if len(arrivals) > OPEN_LOOP_MAX_REQUESTS:
        raise SystemExit(f"{len(arrivals)} questions: more than {OPEN_LOOP_MAX_REQUESTS}")
    cycle = itertools.cycle(questions)
    # No pool limit below the number of questions: a request waiting for a connection
    # would be the client's queue, not the server's.
    limits = httpx.Limits(max_connections=len(arrivals) or 1, max_keepalive_connections=100)
    timeout = httpx.Timeout(REQUEST_TIMEOUT_S, connect=30.0)
    in_flight = [0, 0]  # now, most at once
    send_lag_ms: list[float] = []

    async def one(client: httpx.AsyncClient, question: str, scheduled: float) -> Stream:
        in_flight[0] += 1
        in_flight[1] = max(in_flight[1], in_flight[0])
        try:
            return await chat_once(client, question, started=scheduled)
        finally:
            in_flight[0] -= 1

    reset = reset_peak_memory(pid)
    rest = process_memory_mb(pid)["rss_mb"] or 0.0
    peak = [rest]
    stop = asyncio.Event()
    load_before = load_average()
    cpu_before = time.process_time()
    server_cpu_before = process_cpu_s(pid)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
        sampler = asyncio.create_task(_sample_memory(pid, peak, stop))
        tasks = []
        start = time.perf_counter()
        for offset in arrivals:
            scheduled = start + offset
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            send_lag_ms.append((time.perf_counter() - scheduled) * 1000)
            tasks.append(asyncio.create_task(one(client, next(cycle), scheduled)))
        sent_s = time.perf_counter() - start
        results: list[Stream] = list(await asyncio.gather(*tasks))
        wall = time.perf_counter() - start
        stop.set()
        await sampler
    server_cpu = _cpu_ms_per_answer(pid, server_cpu_before, completed=_completed(results))
    memory = process_memory_mb(pid)
    peak_mb = max(peak[0], memory["hwm_mb"] or 0.0) if reset else peak[0]
    errors = _errors(results)
    completed = _completed(results)
    return {
        "rate_per_s": rate,
        "duration_s": duration_s,
        "seed": seed,
        "requests": len(results),
        "offered_per_s": round(len(results) / duration_s, 2),
        "sent_in_s": round(sent_s, 2),
        "completed": completed,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "wall_s": round(wall, 2),
        "answers_per_s": round(completed / wall, 2) if wall else None,
        "max_in_flight": in_flight[1],
        "send_lag_ms": summary(send_lag_ms),
        "meta_ms": summary(_times(results, "meta")),
        "sources_ms": summary(_times(results, "sources")),
        "first_token_ms": summary(_times(results, "first_token")),
        "done_ms": summary(_times(results, "done")),
        "tokens_mean": round(sum(r.tokens for r in results) / len(results), 1) if results else None,
        "server_rss_mb": {"before": rest, "peak": peak_mb, "after": memory["rss_mb"]},
        "server_cpu_ms_per_answer": server_cpu,
        "client_cpu_s": round(time.process_time() - cpu_before, 2),
        "load_average": load_before,
        "load_average_after": load_average(),
    }


_TIMES = (
    ("meta", "meta_ms"),
    ("sources", "sources_ms"),
    ("first token", "first_token_ms"),
    ("done", "done_ms"),
)


def _print_times(row: dict[str, Any], extra: tuple[tuple[str, str], ...] = ()) -> None:
    """One line per event time of a run: p50, p95 and max."""
    for label, key in (*_TIMES, *extra):
        figures = row[key]
        print(
            f"      {label:<12} p50 {fmt_ms(figures['p50']):>7} ms   p95 {fmt_ms(figures['p95']):>7} ms"
            f"   max {fmt_ms(figures['max']):>7} ms"
        )


def print_open_loop(row: dict[str, Any]) -> None:
    """The open loop's figures and its verdict against issue 13's targets."""
    print(
        f"open loop: {row['requests']} questions at {row['rate_per_s']}/s for "
        f"{row['duration_s']} s (seed {row['seed']}, {row['offered_per_s']}/s offered), "
        f"{row['completed']} answered in {row['wall_s']} s, {row['errors']} errors "
        f"{row['error_kinds'] or ''}; at most {row['max_in_flight']} streams open at once"
    )
    _print_times(row, extra=(("send lag", "send_lag_ms"),))
    memory = row["server_rss_mb"]
    print(
        f"      server RSS {memory['before']} MB before, peak {memory['peak']} MB; "
        f"server CPU {row['server_cpu_ms_per_answer']} ms per answer; "
        f"client CPU {row['client_cpu_s']} s; load {row['load_average']} before, "
        f"{row['load_average_after']} after"
    )
    for label, key, target in (
        ("time to sources", "sources_ms", OPEN_LOOP_SOURCES_P95_MS),
        ("first token", "first_token_ms", OPEN_LOOP_FIRST_TOKEN_P95_MS),
    ):
        p95 = row[key]["p95"]
        met = p95 is not None and p95 <= target and row["errors"] == 0
        print(
            f"target {label} p95 <= {target:.0f} ms (no errors): "
            f"{'met' if met else 'NOT met'} ({fmt_ms(p95)} ms, {row['errors']} errors)"
        )


def print_level(row: dict[str, Any]) -> None:
    """One level's figures."""
    print(
        f"{row['streams']:>4} streams: {row['requests']} requests in {row['wall_s']} s "
        f"({row['answers_per_s']} answers/s), {row['errors']} errors {row['error_kinds'] or ''}"
    )
    _print_times(row)
    memory = row["server_rss_mb"]
    print(
        f"      server RSS {memory['before']} MB before, peak {memory['peak']} MB; "
        f"server CPU {row['server_cpu_ms_per_answer']} ms per answer; "
        f"client CPU {row['client_cpu_s']} s; load {row['load_average'][0]}"
    )


def print_table(rows: list[dict[str, Any]]) -> None:
    """All levels as one table."""
    print(
        f"\n{'streams':>7} {'n':>5} {'err':>4} {'ans/s':>6} {'sources p50':>12} {'p95':>8} "
        f"{'1st token p50':>14} {'p95':>8} {'peak RSS MB':>12}"
    )
    for row in rows:
        print(
            f"{row['streams']:>7} {row['requests']:>5} {row['errors']:>4} {row['answers_per_s']:>6} "
            f"{fmt_ms(row['sources_ms']['p50']):>12} {fmt_ms(row['sources_ms']['p95']):>8} "
            f"{fmt_ms(row['first_token_ms']['p50']):>14} {fmt_ms(row['first_token_ms']['p95']):>8} "
            f"{row['server_rss_mb']['peak']:>12}"
        )


def requests_for(streams: int, rounds: int, minimum: int) -> int:
    """How many requests a level sends: `rounds` per stream, at least `minimum`."""
    return max(minimum, streams * rounds)


async def _ingest(*, data_dir: Path, book: Path, extra: dict[str, str]) -> dict[str, Any]:
    """Serve with --ingest if-empty until the book is indexed; the figures of that run."""
    since = datetime.now(UTC) - timedelta(seconds=1)
    with running_server(
        data_dir=data_dir, book_dir=book, ingest="if-empty", extra_env=extra
    ) as server:
        started = time.perf_counter()
        task = await asyncio.to_thread(ingestion_wait, server.url)
        seconds = round(time.perf_counter() - started, 1)
        if task is not None and task["status"] != "succeeded":
            raise SystemExit(f"the ingestion {task['status']}: {task.get('errors')}")
        index = await asyncio.to_thread(index_summary, server.url)
        memory = server.memory()
    # A re-used --data folder has an older task: that is not this run's ingestion.
    fresh = task is not None and datetime.fromisoformat(task["started_at"]) >= since
    how = (
        f"indexed in {seconds} s ({task['embeddings_computed']} embeddings computed)"
        if fresh
        else "already indexed"
    )
    print(
        f"{book.name}: {index.get('documents')} files, {index.get('chunks')} chunks, "
        f"{index.get('points')} points in the store, {how}"
        + (
            f"; server RSS after ingesting {memory['rss_mb']} MB, peak {memory['hwm_mb']} MB"
            if fresh
            else ""
        )
    )
    return {
        "files": index.get("documents"),
        "chunks": index.get("chunks"),
        "points": index.get("points"),
        "ingest_s": seconds if fresh else None,
        "rss_after_ingest_mb": memory["rss_mb"] if fresh else None,
        "hwm_ingest_mb": memory["hwm_mb"] if fresh else None,
    }


async def bench(args: argparse.Namespace, book: Path, questions: list[str]) -> dict[str, Any]:
    """Index the book, restart the server over that index, warm up, run every level.

    The restart makes "at rest" mean what a deployed server holds: the index and the
    model, not what the ingestion left behind in the heap.
    """
    extra = {"VECTOR_ENGINE": args.engine} if args.engine else {}
    with tempfile.TemporaryDirectory(prefix="ragsite-bench-chat-") as tmp:
        data_dir = args.data or Path(tmp) / "data"
        ingested = await _ingest(data_dir=data_dir, book=book, extra=extra)
        with running_server(
            data_dir=data_dir, book_dir=book, ingest="never", extra_env=extra
        ) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=REQUEST_TIMEOUT_S) as client:
                # Warm with the last questions: the levels start from the first, so a
                # timed answer is not one the server has just given (its caches).
                for question in questions[-WARMUP_REQUESTS:]:
                    warm = await chat_once(client, question)
                    if warm.error:
                        raise SystemExit(
                            f"warm-up request failed: {warm.error}\n{server.log_tail()}"
                        )
            at_rest = server.memory()
            print(
                f"server restarted over the index in {server.started_s} s; "
                f"RSS at rest (after {WARMUP_REQUESTS} answers): {at_rest['rss_mb']} MB"
            )
            engine = (await asyncio.to_thread(_health, server.url)).get("engine")
            levels = []
            open_loop = None
            if args.open_loop:
                open_loop = await run_open_loop(
                    url=server.url,
                    pid=server.pid,
                    rate=args.open_loop,
                    duration_s=args.duration,
                    seed=args.seed,
                    questions=questions,
                )
                print_open_loop(open_loop)
            for streams in [] if args.open_loop else args.levels:
                row = await run_level(
                    url=server.url,
                    pid=server.pid,
                    streams=streams,
                    requests=requests_for(streams, args.rounds, args.min_requests),
                    budget_s=args.budget_s,
                    questions=questions,
                )
                print_level(row)
                levels.append(row)
                await asyncio.sleep(1.0)  # let the server's pending writes settle
    return {
        "book": str(book),
        **ingested,
        "engine": args.engine or "default",
        "engine_reported": engine,
        "server_start_s": server.started_s,
        "server_rss_at_rest_mb": at_rest["rss_mb"],
        "levels": levels,
        "open_loop": open_loop,
    }


def _health(url: str) -> dict[str, Any]:
    """The vector store's part of /api/health (its `engine` when the store reports one)."""
    health = httpx.get(f"{url}/api/health", timeout=30.0).json()
    return health["checks"]["vector_store"]


def verdict(levels: list[dict[str, Any]]) -> str | None:
    """The issue's target: time to sources p95 < 100 ms at 50 streams."""
    row = next((row for row in levels if row["streams"] == TARGET_STREAMS), None)
    if row is None or row["sources_ms"]["p95"] is None:
        return None
    p95 = row["sources_ms"]["p95"]
    met = p95 < TARGET_SOURCES_P95_MS
    return (
        f"target time-to-sources p95 < {TARGET_SOURCES_P95_MS:.0f} ms at {TARGET_STREAMS} streams: "
        f"{'met' if met else 'NOT met'} ({fmt_ms(p95)} ms)"
    )


def main() -> None:
    """Parse the options, run every level against a fresh server, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--book",
        default=str(TEXTBOOK_DIR),
        help="book folder, or 'docs' for the project's docs (default: the robotics textbook)",
    )
    parser.add_argument("--levels", type=int, nargs="+", default=DEFAULT_LEVELS)
    parser.add_argument("--rounds", type=int, default=3, help="requests per stream (default 3)")
    parser.add_argument(
        "--min-requests", type=int, default=20, help="requests per level at least (default 20)"
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=90.0,
        help="no new request after this many seconds per level",
    )
    parser.add_argument(
        "--engine", help="VECTOR_ENGINE for the server (default: the configured one)"
    )
    parser.add_argument(
        "--open-loop",
        type=float,
        metavar="RATE",
        help="instead of the levels: questions arriving at random at RATE per second",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=60.0,
        help=f"seconds of arrivals in the open loop (default 60, at most {OPEN_LOOP_MAX_DURATION_S:.0f})",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=OPEN_LOOP_SEED,
        help=f"seed of the open loop's arrival times (default {OPEN_LOOP_SEED})",
    )
    parser.add_argument(
        "--data",
        type=Path,
        help="data folder to keep and re-use (an indexed book is not ingested again)",
    )
    parser.add_argument(
        "--json", dest="json_out", metavar="OUT", help="write the figures to this file"
    )
    args = parser.parse_args()
    if args.open_loop is not None and not (
        args.open_loop > 0 and 0 < args.duration <= OPEN_LOOP_MAX_DURATION_S
    ):
        parser.error(
            f"--open-loop needs a positive rate and 0 < --duration <= {OPEN_LOOP_MAX_DURATION_S:.0f}"
        )

    book = REPO_DIR / "docs" if args.book == "docs" else Path(args.book).resolve()
    if not book.is_dir():
        raise SystemExit(f"no book at {book}")
    questions = textbook_questions() if book == TEXTBOOK_DIR.resolve() else DOCS_QUESTIONS
    info = machine()
    print(machine_line(info))
    result = asyncio.run(bench(args, book, questions))
    if result["levels"]:
        print_table(result["levels"])
    line = verdict(result["levels"])
    if line:
        print(line)
    print(machine_line())
    if args.json_out:
        write_json(
            args.json_out,
            {
                "benchmark": "chat_load",
                "machine": info,
                "load_average_end": load_average(),
                "llm": "extractive",
                "mode": "open_loop" if args.open_loop else "levels",
                "rounds": args.rounds,
                "budget_s": args.budget_s,
                **result,
            },
        )


if __name__ == "__main__":
    main()
