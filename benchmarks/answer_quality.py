"""Answer quality of the offline (extractive) answerer, and doubt, on question sets.

What runs: the book is chunked and embedded with the real packaged model into an
embedded Qdrant store in a cache folder (kept between runs: a whole book costs 1-3
minutes of CPU; `--fresh` rebuilds it). Every in-book question then goes the way a
reader's does without a language model: `book_search` (fusion, repeats collapsed,
`book_supports`), the sources packed from `Retrieval.sections`, and
`extractive_answer`. Measured:

- answer holds an answer: one of the question's `answers` occurs in the answer text
  (the harness's `contains_answer`: normalised, on word boundaries);
- first sentence holds one: the same for the answer's first sentence (up to its first
  citation); and, apart (`first_with_code`), the same counting the fenced code block that
  this first cited line introduces ("enter the following [1]:"), as a lead-in's list is;
- phantom citations: `[n]` in an answer with no source n (must be 0);
- uncertain: the share of questions `book_supports` turns down, for in-book questions
  (should be low) and out-of-book ones (should be high), near-domain ones apart.

The answer figures are also given for the even rows of each question file (0-based row
index: what benchmarks/fit_sentence_model.py fits the sentence model on) and the odd
rows (held out from that fit). `--dump` writes what the fit reads: per in-book question
its sources and every quotable sentence's cosine with the question.

    uv run python benchmarks/answer_quality.py --book ../shared/books/rust-book \\
        --questions benchmarks/questions/rust-book.jsonl \\
        --out-of-book benchmarks/questions/out-of-book-rust.jsonl --json /tmp/answers.json
    uv run python benchmarks/answer_quality.py --plot textbook.json rust.json  # eval_retrieval --json
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

REPO_DIR = Path(__file__).resolve().parent.parent
CACHE_ROOT = Path(tempfile.gettempdir()) / "ragsite-answer-quality"
_CITATION = re.compile(r"\[(\d+)\]")
_CODE = re.compile(r"^(```|~~~).*?^\1$|`[^`\n]*`", re.MULTILINE | re.DOTALL)
_FIRST_SENTENCE = re.compile(r"^.*?\[\d+\][.!?:…]*", re.DOTALL)
_OPENING_BLOCK = re.compile(r"\s*\n(```|~~~)[^\n]*\n.*?\n\1$", re.MULTILINE | re.DOTALL)


def _setup(data_dir: Path) -> None:
    """Point Django at the cache folder (its own SQLite and store) and set it up."""
    os.environ["RAGSITE_DATA_DIR"] = str(data_dir)
    for name in [n for n in os.environ if n.startswith(("OPENAI_", "QDRANT_", "LLM_"))]:
        del os.environ[name]  # never a paid model or a remote store
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")
    sys.path.insert(0, str(REPO_DIR))
    import django

    django.setup()


def book_index_cached(*, book_dir: Path, fresh: bool = False) -> int:
    """Index the book into the cache folder the way the product does (`book_ingest`).

    The real ingestion keeps the folder up to date by itself: an unchanged book embeds
    nothing, and the embedding cache holds each chunk's sentence vectors, which the
    extractive answerer reads as it does when serving.
    """
    from django.core.management import call_command

    from ingestion.services import book_ingest
    from ragsite.rag import providers

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    task = book_ingest(book_dir=book_dir, force=fresh, source="manage.py")
    if task.status != "succeeded":
        raise SystemExit(f"ingestion failed: {task.errors}")
    count = providers.get_store().count()
    print(
        f"index of {count} chunks ready in {time.perf_counter() - started:.0f} s", file=sys.stderr
    )
    return count


def _load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def first_sentence(answer: str) -> str:
    """The answer up to and including its first citation (its first quoted sentence)."""
    match = _FIRST_SENTENCE.match(answer)
    return match.group(0) if match else answer


def first_statement(answer: str) -> str:
    """The first sentence, with the fenced code block it introduces ("... run: [1]:" or
    "[1]:" right before a block): an answer that opens with a command or a listing
    states it there, as a lead-in states its list."""
    lead = first_sentence(answer)
    if lead.endswith(":"):
        block = _OPENING_BLOCK.match(answer, len(lead))
        if block:
            return lead + block.group(0)
    return lead


def _model():
    from ragsite.rag.extractive import ExtractiveChatModel

    return ExtractiveChatModel()


async def _answer(question: str, *, anyway: bool = False) -> tuple[bool, str, list[Any]]:
    """(supported, answer, sources) as the chat gives them; with `anyway`, an answer even
    when the book is judged not to support one (to measure the answerer)."""
    from chat.services import book_search, sources_pack
    from ragsite.rag import providers
    from ragsite.rag.config import get_config

    config = get_config()
    retrieval = await book_search(query=question, k=config.retrieval_k)
    hits = retrieval.sections if anyway else (retrieval.sections or retrieval.hits)
    if not retrieval.supported and not anyway:
        return False, "", []
    sources = await asyncio.to_thread(
        sources_pack,
        hits=hits,
        budget=config.context_token_budget,
        store=providers.get_store(),
        found=[hit.chunk for hit in retrieval.hits],
    )
    answer = await _extractive(question, sources)
    return retrieval.supported, answer, sources


async def _stored_vectors(sources: list[Any]) -> Any:
    """Each source chunk's stored sentence vectors, as chat reads them."""
    from chat.services.sources import sources_sentence_vectors
    from ragsite.rag import providers

    return await asyncio.to_thread(
        sources_sentence_vectors,
        sources=sources,
        vectors=providers.get_sentence_vectors(),
        embedder=providers.get_embedder(),
    )


async def _extractive(question: str, sources: list[Any]) -> str:
    """The extractive answer as chat gives it: with the sources' stored sentence vectors."""
    from ragsite.rag.types import AnswerRequest

    vectors = await _stored_vectors(sources)
    request = AnswerRequest(question=question, sources=sources, sentence_vectors=vectors)
    return await _model().answer(request)


async def _all_similarities(question: str, sources: list[Any]) -> dict[str, float]:
    """Every quotable sentence's cosine with the question (stored vectors, else embedded
    now): what the sentence model is fitted on."""
    import numpy as np

    from ragsite.rag import providers
    from ragsite.rag.extractive import _prepare, sentence_similarities

    embedder = providers.get_embedder()
    stored = await _stored_vectors(sources)
    found = await sentence_similarities(
        question=question, sources=sources, embedder=embedder, stored=stored
    )
    missing = [s.text for s in _prepare(question, sources)[0] if s.text not in found]
    if missing:
        query, *computed = await embedder.embed([question, *missing])
        query = np.asarray(query, dtype=np.float32)
        found.update(
            (t, float(np.dot(query, np.asarray(v, dtype=np.float32))))
            for t, v in zip(missing, computed, strict=True)
        )
    return found


def _share(items: list[dict[str, Any]], key: str) -> float:
    return sum(1 for item in items if item[key]) / len(items) if items else 0.0


async def answers_measure(
    questions: list[dict[str, Any]],
    out_of_book: list[dict[str, Any]],
    *,
    dump: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run every question; return the figures and each question's outcome.

    Each question may carry `row`, its 0-based row in its file (even rows: the sentence
    model's fitting half). With `dump`, each in-book question's sources and sentence
    cosines are appended to it.
    """
    from evaluation.hits import contains_answer

    rows: list[dict[str, Any]] = []
    for index, q in enumerate(questions):
        supported, answer, sources = await _answer(q["question"])
        # Uncertain in-book questions are answered anyway here, to measure the answerer.
        if not supported:
            _, answer, sources = await _answer(q["question"], anyway=True)
        prose = _CODE.sub(" ", answer)  # a book's `v[0]` is code, not a citation
        cited = {int(n) for n in _CITATION.findall(prose)}
        row_index = q.get("row", index)
        rows.append(
            {
                "id": q["id"],
                "row": row_index,
                "kind": q.get("kind", ""),
                "uncertain": not supported,
                "contains": any(contains_answer(answer, a) for a in q["answers"]),
                "sources_contain": any(
                    contains_answer("\n\n".join(s.body for s in sources), a) for a in q["answers"]
                ),
                "first": any(contains_answer(first_sentence(answer), a) for a in q["answers"]),
                "first_code": any(
                    contains_answer(first_statement(answer), a) for a in q["answers"]
                ),
                "phantoms": sorted(cited - {source.n for source in sources}),
                "answer": answer,
            }
        )
        if dump is not None:
            dump.append(
                {
                    "index": row_index,
                    "id": q["id"],
                    "question": q["question"],
                    "answers": q["answers"],
                    "sources": [
                        {
                            "n": s.n,
                            "score": s.score,
                            "chunk": dataclasses.asdict(s.chunk),
                            "before": s.before,
                            "after": s.after,
                            "found_around": [list(part) for part in s.found_around],
                        }
                        for s in sources
                    ],
                    "similarities": await _all_similarities(q["question"], sources),
                }
            )
    oob_rows = []
    for q in out_of_book:
        supported, _, _ = await _answer(q["question"])
        oob_rows.append(
            {"id": q["id"], "near": bool(q.get("near_domain")), "uncertain": not supported}
        )

    near = [row for row in oob_rows if row["near"]]
    far = [row for row in oob_rows if not row["near"]]
    even = [row for row in rows if row["row"] % 2 == 0]
    odd = [row for row in rows if row["row"] % 2 == 1]
    return {
        "questions": len(rows),
        "contains": _share(rows, "contains"),
        "sources_contain": _share(rows, "sources_contain"),
        "first_sentence": _share(rows, "first"),
        "first_with_code": _share(rows, "first_code"),
        "even_rows": {
            "questions": len(even),
            "contains": _share(even, "contains"),
            "sources_contain": _share(even, "sources_contain"),
            "first_sentence": _share(even, "first"),
            "first_with_code": _share(even, "first_code"),
        },
        "odd_rows": {
            "questions": len(odd),
            "contains": _share(odd, "contains"),
            "sources_contain": _share(odd, "sources_contain"),
            "first_sentence": _share(odd, "first"),
            "first_with_code": _share(odd, "first_code"),
        },
        "phantom_citations": sum(len(row["phantoms"]) for row in rows),
        "in_book_uncertain": _share(rows, "uncertain"),
        "out_of_book": len(oob_rows),
        "out_of_book_uncertain": _share(oob_rows, "uncertain"),
        "near_domain_uncertain": _share(near, "uncertain"),
        "far_domain_uncertain": _share(far, "uncertain"),
        "rows": rows,
        "out_of_book_rows": oob_rows,
    }


def report_table(figures: dict[str, Any], *, book: str) -> str:
    """The figures as a plain-text table."""
    lines = [
        f"Extractive answers on {book}",
        f"in-book questions: {figures['questions']}   out-of-book: {figures['out_of_book']}",
        "",
        f"answer contains an answer        {figures['contains']:.3f}"
        f"   (even rows {figures['even_rows']['contains']:.3f},"
        f" odd rows, held out {figures['odd_rows']['contains']:.3f})",
        f"sources hold an answer           {figures['sources_contain']:.3f}"
        f"   (even rows {figures['even_rows']['sources_contain']:.3f},"
        f" odd rows, held out {figures['odd_rows']['sources_contain']:.3f})",
        f"first sentence contains one      {figures['first_sentence']:.3f}"
        f"   (even rows {figures['even_rows']['first_sentence']:.3f},"
        f" odd rows, held out {figures['odd_rows']['first_sentence']:.3f})",
        f"... or the code block it opens   {figures['first_with_code']:.3f}"
        f"   (even rows {figures['even_rows']['first_with_code']:.3f},"
        f" odd rows, held out {figures['odd_rows']['first_with_code']:.3f})",
        f"phantom citations                {figures['phantom_citations']}",
        f"in-book flagged uncertain        {figures['in_book_uncertain']:.3f}",
        f"out-of-book flagged uncertain    {figures['out_of_book_uncertain']:.3f}"
        f"   (near-domain {figures['near_domain_uncertain']:.3f},"
        f" far {figures['far_domain_uncertain']:.3f})",
    ]
    return "\n".join(lines)


def plot_retrieval(reports: list[Path], out: Path) -> None:
    """Bar chart of R@5 and MRR@10 per method, one group per `eval_retrieval --json` report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = ["bm25", "dense", "hybrid_raw", "hybrid"]
    labels = ["BM25 alone", "dense alone", "store fusion (RRF)", "book_search"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for axis, metric in zip(axes, ("recall@5", "mrr@10"), strict=True):
        width = 0.8 / len(methods)
        for i, method in enumerate(methods):
            values = []
            for report in reports:
                data = json.loads(report.read_text())
                row = next(m for m in data["methods"] if m["method"] == method)
                values.append(row[metric])
            xs = [j + i * width for j in range(len(reports))]
            bars = axis.bar(xs, values, width, label=labels[i])
            axis.bar_label(bars, fmt="%.2f", fontsize=7)
        axis.set_xticks([j + 0.4 - width / 2 for j in range(len(reports))])
        names = [Path(json.loads(r.read_text())["book"]).name for r in reports]
        axis.set_xticklabels(
            [
                # A long folder name ("physical-ai-humanoid-robotics") on two lines.
                f"{textwrap.fill(n.replace('-', ' '), 18)}\n({json.loads(r.read_text())['questions']} q)"
                for n, r in zip(names, reports, strict=True)
            ],
            fontsize=8,
        )
        axis.set_title(metric.replace("recall", "R").upper())
        axis.set_ylim(0, 1)
    axes[0].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> None:
    """Parse the arguments, index (or reuse) the book, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--book", type=Path)
    parser.add_argument("--questions", type=Path, action="append", default=[])
    parser.add_argument("--out-of-book", type=Path, action="append", default=[])
    parser.add_argument("--cache", type=Path, help="data folder to keep the index in")
    parser.add_argument("--fresh", action="store_true", help="re-index even if cached")
    parser.add_argument("--json", dest="json_out", type=Path)
    parser.add_argument("--show", type=int, default=0, help="print N failed answers")
    parser.add_argument(
        "--dump", type=Path, help="write the sentence model's fitting data (JSON lines)"
    )
    parser.add_argument(
        "--plot", nargs="+", type=Path, metavar="REPORT", help="eval_retrieval --json reports"
    )
    parser.add_argument("--plot-out", type=Path, default=REPO_DIR / "docs/img/retrieval-fusion.png")
    args = parser.parse_args()
    if args.plot:
        plot_retrieval(args.plot, args.plot_out)
        print(f"plot written to {args.plot_out}")
        return
    book = args.book.resolve()
    _setup(args.cache or CACHE_ROOT / book.name)
    chunks = book_index_cached(book_dir=book, fresh=args.fresh)
    questions = [
        {**q, "row": row}
        for path in args.questions
        for row, q in enumerate(_load(path))
        if not q.get("out_of_book")
    ]
    oob = [q for path in args.out_of_book for q in _load(path) if q.get("out_of_book")]
    started = time.perf_counter()
    dump: list[dict[str, Any]] | None = [] if args.dump else None
    figures = asyncio.run(answers_measure(questions, oob, dump=dump))
    if args.dump and dump is not None:
        args.dump.write_text("".join(json.dumps(row) + "\n" for row in dump))
        print(f"fitting data written to {args.dump}")
    figures.update(book=str(book), chunks=chunks, seconds=round(time.perf_counter() - started, 1))
    print(report_table(figures, book=book.name))
    if args.show:
        failed = [row for row in figures["rows"] if not row["first"]][: args.show]
        for row in failed:
            print(f"\n--- {row['id']} (contains {row['contains']})\n{row['answer'][:700]}")
    if args.json_out:
        args.json_out.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {args.json_out}")


if __name__ == "__main__":
    main()
