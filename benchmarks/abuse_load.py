"""Bounded abuse on loopback: many concurrent SSE chats, some cut off mid-stream.

What runs: a real `manage.py serve` on 127.0.0.1 with a fresh data folder ingests the
project's own docs (or `--url` names a server already running on loopback), then this
script opens `--streams` complete `POST /api/chat` streams and `--aborted` streams it
closes right after `meta`, `sources` or the first `token` (rotating), at most
`--concurrency` at a time. Afterwards `/api/health` must still answer 200.

Every problem is printed and counted: a non-200 answer (5xx separately), an `error`
event, a stream that ends without `done`, a broken connection, a timeout. The exit
status is 1 when there was any. The run is bounded in count and in time (`--budget`
seconds), and only ever talks to 127.0.0.1.

    uv run python benchmarks/abuse_load.py                          # 200 streams, 100 aborted
    uv run python benchmarks/abuse_load.py --streams 50 --aborted 50 --concurrency 20
    uv run python benchmarks/abuse_load.py --url http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO_DIR, ingestion_wait, machine_line, running_server  # noqa: E402

ABORT_AFTER = ("meta", "sources", "token")
QUESTIONS = [
    "How do I ingest my book?",
    "What does the health endpoint report?",
    "Which vector store does ragsite use?",
    "How are chat answers streamed?",
    "What settings limit requests?",
]
STREAM_TIMEOUT_S = 60.0
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass
class Outcome:
    """What one chat stream did."""

    aborted: bool
    status: int | None = None
    events: list[str] = field(default_factory=list)
    error: str | None = None


def _sse_names(buffer: str) -> tuple[list[tuple[str, str]], str]:
    """Split complete SSE events off a text buffer: ([(event, data)], rest)."""
    events = []
    while "\n\n" in buffer:
        block, buffer = buffer.split("\n\n", 1)
        name, data = "message", ""
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
        if any(not line.startswith(":") for line in block.splitlines()):
            events.append((name, data))
    return events, buffer


async def chat_stream(
    client: httpx.AsyncClient, *, question: str, abort_after: str | None
) -> Outcome:
    """Open one chat stream; read it to the end, or close it after `abort_after`."""
    outcome = Outcome(aborted=abort_after is not None)
    try:
        async with client.stream("POST", "/api/chat", json={"message": question}) as response:
            outcome.status = response.status_code
            if response.status_code != 200:
                body = (await response.aread()).decode(errors="replace")[:200]
                outcome.error = f"HTTP {response.status_code}: {body}"
                return outcome
            buffer = ""
            async for text in response.aiter_text():
                events, buffer = _sse_names(buffer + text)
                for name, data in events:
                    outcome.events.append(name)
                    if name == "error":
                        outcome.error = f"error event: {data[:200]}"
                        return outcome
                    if name == abort_after:
                        return outcome  # leaving the block closes the connection mid-answer
        if not outcome.aborted and (not outcome.events or outcome.events[-1] != "done"):
            outcome.error = f"stream ended without done after {outcome.events}"
    except (httpx.HTTPError, TimeoutError) as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
    return outcome


async def abuse_run(
    url: str,
    *,
    streams: int,
    aborted: int,
    concurrency: int,
    budget_s: float = 300.0,
    questions: list[str] | None = None,
) -> dict[str, Any]:
    """Run the streams against a loopback server; return counts and every error.

    Raises:
        ValueError: `url` is not a loopback address.
    """
    if urlparse(url).hostname not in LOOPBACK_HOSTS:
        raise ValueError(f"abuse_load only targets loopback servers, not {url}")
    questions = questions or QUESTIONS
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=0)
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=STREAM_TIMEOUT_S, limits=limits) as client:

        async def one(index: int, abort_after: str | None) -> Outcome:
            async with gate:
                return await chat_stream(
                    client, question=questions[index % len(questions)], abort_after=abort_after
                )

        tasks = [
            asyncio.ensure_future(one(i, abort_after))
            for i, abort_after in enumerate(_plan(streams, aborted))
        ]
        done, pending = await asyncio.wait(tasks, timeout=budget_s)
        for task in pending:
            task.cancel()
        outcomes = [task.result() for task in done]
        health = await client.get("/api/health")
    errors = [o.error for o in outcomes if o.error]
    errors += [f"not finished within the {budget_s:g} s budget"] * len(pending)
    if health.status_code != 200:
        errors.append(f"/api/health answered {health.status_code} after the run")
    statuses = Counter(o.status for o in outcomes)
    return {
        "streams": streams,
        "aborted": aborted,
        "concurrency": concurrency,
        "completed": sum(1 for o in outcomes if not o.aborted and not o.error),
        "cut_off": sum(1 for o in outcomes if o.aborted and not o.error),
        "statuses": {str(k): v for k, v in sorted(statuses.items(), key=lambda kv: str(kv[0]))},
        "five_xx": sum(v for k, v in statuses.items() if k is not None and k >= 500),
        "health_after": health.json().get("status"),
        "errors": errors,
        "elapsed_s": round(time.perf_counter() - started, 2),
    }


def _plan(streams: int, aborted: int) -> list[str | None]:
    """The streams in order: complete (None) and aborted (after which event), interleaved
    so that cut-offs happen while other streams are open."""
    cut = [ABORT_AFTER[i % len(ABORT_AFTER)] for i in range(aborted)]
    whole: list[str | None] = [None] * streams
    plan: list[str | None] = []
    for pair in itertools.zip_longest(whole, cut, fillvalue="-"):
        plan.extend(item for item in pair if item != "-")
    return plan


def report_print(result: dict[str, Any]) -> None:
    """Print the run's counts, then each error."""
    print(
        f"{result['streams']} streams + {result['aborted']} aborted at concurrency "
        f"{result['concurrency']}: {result['completed']} completed, {result['cut_off']} cut off, "
        f"statuses {result['statuses']}, {result['five_xx']} 5xx, health after: "
        f"{result['health_after']}, {result['elapsed_s']} s"
    )
    print(f"errors: {len(result['errors'])}")
    for error in result["errors"]:
        print(f"  {error}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=200, help="complete streams (200)")
    parser.add_argument("--aborted", type=int, default=100, help="streams cut off (100)")
    parser.add_argument("--concurrency", type=int, default=50, help="streams open at once (50)")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds for the run (300)")
    parser.add_argument("--url", help="a running server on loopback (default: start one)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    print(machine_line())
    if args.url:
        result = asyncio.run(
            abuse_run(
                args.url,
                streams=args.streams,
                aborted=args.aborted,
                concurrency=args.concurrency,
                budget_s=args.budget,
            )
        )
    else:
        with (
            tempfile.TemporaryDirectory(prefix="ragsite-abuse-") as tmp,
            running_server(
                data_dir=Path(tmp) / "data", book_dir=REPO_DIR / "docs", ingest="always"
            ) as server,
        ):
            ingestion_wait(server.url)
            result = asyncio.run(
                abuse_run(
                    server.url,
                    streams=args.streams,
                    aborted=args.aborted,
                    concurrency=args.concurrency,
                    budget_s=args.budget,
                )
            )
    report_print(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if result["errors"] or result["five_xx"] else 0


if __name__ == "__main__":
    sys.exit(main())
