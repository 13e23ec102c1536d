"""Doubt alone, on question sets: the share of questions `book_supports` turns down.

What `benchmarks/answer_quality.py` reports as "flagged uncertain", without composing
any answer: every question goes through `book_search` (the same index cache, the same
fusion and `evidence_gather`), and only its `supported` is read. In-book questions
should be flagged rarely, out-of-book ones nearly always (near-domain ones apart).

`--capture FILE` also keeps what `evidence_gather` was given for each question (the
query, the judged top hits, both channels' candidates); `--replay FILE` judges those
again with the current `evidence_gather` and `book_supports`, without the store or
the embedder (a second, not minutes): for trying a change to doubt against fixed
search results. `--show` lists the questions judged wrongly, with their evidence.

    uv run python benchmarks/doubt_quality.py --book ../shared/books/rust-book \\
        --questions benchmarks/questions/rust-book.jsonl \\
        --out-of-book benchmarks/questions/out-of-book-rust-tuning.jsonl \\
        --cache /tmp/answers-rust --capture /tmp/doubt-rust.pickle
    uv run python benchmarks/doubt_quality.py --replay /tmp/doubt-rust.pickle --show
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import answer_quality  # noqa: E402  (the index cache and the Django set-up)


def _share(rows: list[dict[str, Any]]) -> float:
    return sum(1 for row in rows if row["uncertain"]) / len(rows) if rows else 0.0


async def _capture(questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each question's `book_search` inputs to doubt (what `evidence_gather` received)."""
    from chat.services import book_search
    from chat.services import retrieval as retrieval_module
    from ragsite.rag.config import get_config

    gather = retrieval_module.evidence_gather
    seen: list[dict[str, Any]] = []

    def recording(**kwargs: Any) -> Any:
        seen.append(
            {key: list(value) if key != "query" else value for key, value in kwargs.items()}
        )
        return gather(**kwargs)

    retrieval_module.evidence_gather = recording  # our own function, recorded for replay
    asked: dict[str, dict[str, Any]] = {}
    try:
        captured = []
        for q in questions:
            seen.clear()
            result = await book_search(query=q["question"], k=get_config().retrieval_k)
            # A question asked before (two sets may share one) is answered from
            # `book_search`'s memory of searches, which gathers no evidence again.
            [inputs] = seen or [asked[q["question"]]]
            asked[q["question"]] = inputs
            hits = [hit.chunk.id for hit in result.hits]
            captured.append({**q, "inputs": inputs, "supported": result.supported, "hits": hits})
    finally:
        retrieval_module.evidence_gather = gather
    return captured


def doubt_judge(captured: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Judge the captured questions again with the current `evidence_gather`."""
    from chat.services.retrieval import book_supports, evidence_gather

    rows = []
    for q in captured:
        evidence = evidence_gather(**q["inputs"])
        rows.append(
            {
                "id": q["id"],
                "question": q["question"],
                "out_of_book": bool(q.get("out_of_book")),
                "near": bool(q.get("near_domain")),
                "row": q.get("row", 0),
                "uncertain": not book_supports(evidence),
                "evidence": evidence,
            }
        )
    return rows


def doubt_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The shares flagged uncertain: in-book (all, even rows), out-of-book (near, far)."""
    inside = [row for row in rows if not row["out_of_book"]]
    outside = [row for row in rows if row["out_of_book"]]
    return {
        "in_book": len(inside),
        "in_book_uncertain": _share(inside),
        "in_book_even_uncertain": _share([row for row in inside if row["row"] % 2 == 0]),
        "out_of_book": len(outside),
        "out_of_book_uncertain": _share(outside),
        "near_domain_uncertain": _share([row for row in outside if row["near"]]),
        "far_domain_uncertain": _share([row for row in outside if not row["near"]]),
        "flagged_in_book": [row["id"] for row in inside if row["uncertain"]],
        "passed_out_of_book": [row["id"] for row in outside if not row["uncertain"]],
    }


def _print(figures: dict[str, Any], rows: list[dict[str, Any]], *, show: bool) -> None:
    print(
        f"in-book flagged uncertain      {figures['in_book_uncertain']:.3f}"
        f" of {figures['in_book']} (even rows {figures['in_book_even_uncertain']:.3f})\n"
        f"out-of-book flagged uncertain  {figures['out_of_book_uncertain']:.3f}"
        f" of {figures['out_of_book']} (near-domain {figures['near_domain_uncertain']:.3f},"
        f" far {figures['far_domain_uncertain']:.3f})"
    )
    if not show:
        return
    for row in rows:
        if row["uncertain"] == row["out_of_book"]:
            continue
        e = row["evidence"]
        label = "passed" if row["out_of_book"] else "flagged"
        print(
            f"  {label} {row['id']}: {row['question']!r} cosine {e.cosine:.3f}"
            f" missing {list(e.missing_terms)} ({e.missing:.2f}) stray {list(e.stray_names)}"
            f" scope {list(e.scope_names)}"
        )


def main() -> None:
    """Parse the arguments; capture (index and search) or replay; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--book", type=Path)
    parser.add_argument("--questions", type=Path, action="append", default=[])
    parser.add_argument("--out-of-book", type=Path, action="append", default=[])
    parser.add_argument("--cache", type=Path, help="data folder to keep the index in")
    parser.add_argument("--capture", type=Path, help="keep the search results for --replay")
    parser.add_argument("--replay", type=Path, help="judge a --capture file again")
    parser.add_argument("--show", action="store_true", help="list the questions judged wrongly")
    parser.add_argument("--json", dest="json_out", type=Path)
    args = parser.parse_args()
    started = time.perf_counter()
    if args.replay:
        answer_quality._setup(answer_quality.CACHE_ROOT / "doubt-replay")
        captured = pickle.loads(args.replay.read_bytes())  # noqa: S301 (a file --capture wrote)
    else:
        book = args.book.resolve()
        answer_quality._setup(args.cache or answer_quality.CACHE_ROOT / book.name)
        answer_quality.book_index_cached(book_dir=book)
        load = answer_quality._load
        questions = [
            {**q, "row": row}
            for path in args.questions
            for row, q in enumerate(load(path))
            if not q.get("out_of_book")
        ]
        questions += [q for path in args.out_of_book for q in load(path) if q.get("out_of_book")]
        captured = asyncio.run(_capture(questions))
        if args.capture:
            args.capture.write_bytes(pickle.dumps(captured))
    rows = doubt_judge(captured)
    figures = doubt_figures(rows)
    figures["seconds"] = round(time.perf_counter() - started, 1)
    _print(figures, rows, show=args.show)
    if args.json_out:
        args.json_out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
