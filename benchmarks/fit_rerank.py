"""Would a fitted second stage rank `book_search`'s candidates better than its hand-set sum?

`book_search` orders its ~20 collapsed candidates by a sum set by hand: the fused first
stage over its best, `RETRIEVAL_SENTENCE_WEIGHT` x the best sentence's cosine, then
`RETRIEVAL_TOKEN_WEIGHT` x late interaction scaled 0..1 (docs/retrieval-quality.md). This
script asks whether a model fitted on those signals, and on others the sum leaves out,
does better. It is the harness for a new signal too (a reranker's score, say): add it
to `_features`, dump, fit.

`dump` runs every in-book question of a set through the same stages as `book_search`
(the index cache of `answer_quality.py`), checks that its order is `book_search`'s, and
writes each candidate's signals and whether it answers the question (the hit rule of
`eval_retrieval`). `fit` fits a conditional logit (one softmax over each question's
candidates, the hits the positives: `fit_sentence_model.fit`) on the **even rows** of
every dump and prints R@1/5/10 and MRR@10 of the hand-set order and of the fitted one,
for the even rows and apart for the held-out odd rows.

    uv run python benchmarks/fit_rerank.py dump --book ../shared/books/rust-book \\
        --questions benchmarks/questions/rust-book.jsonl --out /tmp/rerank-rust.json
    uv run python benchmarks/fit_rerank.py fit /tmp/rerank-*.json
    uv run python benchmarks/fit_rerank.py fit /tmp/rerank-*.json --features first,sentence,maxsim,heading

Measured in the 12th session (docs/retrieval-quality.md, "What else was measured"): no
fitted combination beat the hand-set sum on the odd rows; nor, in the 14th, with the
question's terms held (`coverage`) and held close together (`proximity`) added.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import answer_quality  # noqa: E402  (the index cache and the Django set-up)
from fit_sentence_model import fit  # noqa: E402

FEATURES = (
    "first",  # the fused first stage over the best candidate's (what the sum starts from)
    "sentence",  # the best stored sentence's cosine with the question
    "maxsim",  # late interaction, scaled 0..1 over the candidates
    "cosine",  # the chunk's own dense cosine
    "dense",  # dense cosine over the channel's best
    "bm25",  # BM25 score over the channel's best (0 when BM25 did not return it)
    "dense_rank",  # 1 / (1 + rank) in the dense channel, 0 when absent
    "bm25_rank",  # 1 / (1 + rank) in the BM25 channel, 0 when absent
    "heading",  # the share of the question's content words in the page title and heading
    "page",  # log(1 + other candidates of the same page)
    "page_best",  # the best first-stage value of another candidate of the same page
    "second_sentence",  # the second-best sentence's cosine
    "coverage",  # the share of the question's BM25 terms the chunk holds
    "proximity",  # the most of those terms any PROXIMITY_WINDOW terms of the chunk hold, as a share
)
PROXIMITY_WINDOW = 12


def _dump(book: Path, questions_path: Path, out: Path) -> None:
    """Each question's candidates, their signals and hit labels, as `book_search` sees them."""
    answer_quality._setup(answer_quality.CACHE_ROOT / book.name)
    answer_quality.book_index_cached(book_dir=book)
    import asyncio

    from chat.services import book_search
    from chat.services import retrieval as stages
    from evaluation.hits import is_hit
    from evaluation.questions import questions_load
    from ragsite.rag import interaction, providers
    from ragsite.rag.config import get_config
    from ragsite.rag.passages import content_words
    from ragsite.rag.sentences import TOKENS_KEY, chunk_sentence_keys
    from ragsite.rag.sparse import tokenize

    config, embedder, store = get_config(), providers.get_embedder(), providers.get_store()
    rows: list[dict[str, Any]] = []
    for row, question in enumerate(questions_load(questions_path)):
        if question.out_of_book:
            continue
        query = question.question
        [vector] = embedder.embed_sync([query])
        dense, sparse = store.search_channels(
            query_text=query, query_vector=vector, k=max(config.retrieval_pool, config.retrieval_k)
        )
        by_score = stages.hits_fuse(
            dense, sparse, method="minmax", dense_weight=config.retrieval_dense_weight
        )
        limit = max(stages.COLLAPSE_DEPTH_FACTOR * config.retrieval_k, stages.COLLAPSE_DEPTH_MIN)
        candidates = stages.hits_collapse(stages.hits_blend(by_score, dense, sparse), limit=limit)
        ordered = stages.hits_by_interaction(
            stages.hits_by_best_sentence(
                candidates, vector, embedder=embedder, weight=config.retrieval_sentence_weight
            ),
            query,
            embedder=embedder,
            weight=config.retrieval_token_weight,
        )
        served = asyncio.run(book_search(query=query, k=config.retrieval_k))
        if [h.chunk.id for h in served.hits] != [h.chunk.id for h in ordered[: len(served.hits)]]:
            raise SystemExit(f"{question.id}: the stages here no longer give book_search's order")
        stored = stages._stored_per_chunk(candidates, embedder)
        signatures = [stored.get(h.chunk.content_hash, {}).get(TOKENS_KEY) for h in candidates]
        matched = iter(
            interaction.maxsim_many(
                embedder.token_rows_sync(query), [s for s in signatures if s is not None]
            )
        )
        maxsims = [None if s is None else next(matched) for s in signatures]
        dense_at = {h.chunk.id: (rank, h.rank_score) for rank, h in enumerate(dense)}
        sparse_at = {h.chunk.id: (rank, h.rank_score) for rank, h in enumerate(sparse)}
        dense_best = max((h.rank_score for h in dense), default=0.0) or 1.0
        sparse_best = max((h.rank_score for h in sparse), default=0.0) or 1.0
        first_best = max(h.rank_score for h in candidates) or 1.0
        words, terms = content_words(query), set(tokenize(query))
        found = []
        for hit, maxsim in zip(candidates, maxsims, strict=True):
            own = stored.get(hit.chunk.content_hash, {})
            vectors = [own[k] for k in chunk_sentence_keys(hit.chunk.body) if k in own]
            cosines = sorted(
                (np.stack(vectors) @ np.asarray(vector, dtype=np.float32)).tolist()
                if vectors
                else [hit.score]
            )
            title = content_words(f"{hit.chunk.title} {hit.chunk.heading}")
            dense_rank, dense_value = dense_at.get(hit.chunk.id, (None, 0.0))
            sparse_rank, sparse_value = sparse_at.get(hit.chunk.id, (None, 0.0))
            found.append(
                {
                    "id": hit.chunk.id,
                    "path": hit.chunk.path,
                    "hit": is_hit(path=hit.chunk.path, text=hit.chunk.text, question=question),
                    "first": hit.rank_score / first_best,
                    "sentence": cosines[-1],
                    "second_sentence": cosines[-2] if len(cosines) > 1 else cosines[-1],
                    "maxsim_raw": maxsim,
                    "cosine": hit.score,
                    "dense": dense_value / dense_best,
                    "bm25": sparse_value / sparse_best,
                    "dense_rank": 0.0 if dense_rank is None else 1 / (1 + dense_rank),
                    "bm25_rank": 0.0 if sparse_rank is None else 1 / (1 + sparse_rank),
                    "heading": len(words & title) / max(1, len(words)),
                    **_term_features(terms, tokenize(hit.chunk.text)),
                }
            )
        rows.append(
            {
                "id": question.id,
                "row": row,
                "candidates": found,
                "order": [h.chunk.id for h in ordered],
            }
        )
    out.write_text(json.dumps({"book": str(book), "questions": rows}) + "\n")
    print(f"{len(rows)} questions written to {out}")


def _term_features(terms: set[str], text: list[str]) -> dict[str, float]:
    """How much of the question's terms a chunk's terms hold, and how close together."""
    if not terms:
        return {"coverage": 0.0, "proximity": 0.0}
    held = terms & set(text)
    best = max(
        (len(terms & set(text[i : i + PROXIMITY_WINDOW])) for i in range(max(1, len(text)))),
        default=0,
    )
    return {"coverage": len(held) / len(terms), "proximity": best / len(terms)}


def _matrix(row: dict[str, Any], names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The candidates' features (those named) and their hit labels."""
    candidates = row["candidates"]
    known = [c["maxsim_raw"] for c in candidates if c["maxsim_raw"] is not None] or [0.0]
    low, spread = min(known), (max(known) - min(known)) or 1.0
    values = []
    for i, c in enumerate(candidates):
        same = [o for j, o in enumerate(candidates) if j != i and o["path"] == c["path"]]
        maxsim = low if c["maxsim_raw"] is None else c["maxsim_raw"]
        derived = {
            "maxsim": (maxsim - low) / spread,
            "page": math.log1p(len(same)),
            "page_best": max((o["first"] for o in same), default=0.0),
        }
        values.append([derived[n] if n in derived else c[n] for n in names])
    return np.array(values, dtype=float), np.array([c["hit"] for c in candidates], dtype=float)


def _figures(orders: list[list[bool]]) -> str:
    """R@1, R@5, R@10 and MRR@10 of ranked hit labels, one list per question."""
    n = len(orders) or 1
    recall = [sum(any(o[:k]) for o in orders) / n for k in (1, 5, 10)]
    mrr = sum(next((1 / (i + 1) for i, h in enumerate(o[:10]) if h), 0.0) for o in orders) / n
    return "R@1 {:.3f}  R@5 {:.3f}  R@10 {:.3f}  MRR {:.3f}".format(*recall, mrr)


def _fit(paths: list[Path], names: tuple[str, ...], l2: float) -> None:
    sets = {path.stem: json.loads(path.read_text())["questions"] for path in paths}
    data = {stem: [(r, *_matrix(r, names)) for r in rows] for stem, rows in sets.items()}
    every = np.concatenate([x for rows in data.values() for _, x, _ in rows])
    mean, scale = every.mean(axis=0), every.std(axis=0) + 1e-9  # comparable weights
    train = [
        (r["row"], (x - mean) / scale, y)
        for rows in data.values()
        for r, x, y in rows
        if r["row"] % 2 == 0 and y.any()
    ]
    weights = fit(train, free=np.ones(len(names), bool), fixed_weights=np.zeros(0), l2=l2)
    print("fitted weights (per unit of each feature):")
    print("  " + ", ".join(f"{n} {w:.2f}" for n, w in zip(names, weights / scale, strict=True)))
    for stem, rows in data.items():
        for part, label in ((0, "even (fitted)"), (1, "odd (held out)")):
            chosen = [(r, x, y) for r, x, y in rows if r["row"] % 2 == part]
            hand = [
                [{c["id"]: c["hit"] for c in r["candidates"]}[i] for i in r["order"]]
                for r, _, _ in chosen
            ]
            fitted = []
            for _, x, y in chosen:
                order = np.argsort(-(((x - mean) / scale) @ weights), kind="stable")
                fitted.append([bool(v) for v in y[order]])
            print(f"  {stem:16s} {label:15s} n={len(chosen):3d}  hand-set  {_figures(hand)}")
            print(f"  {'':16s} {'':15s}        fitted    {_figures(fitted)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    dump = commands.add_parser("dump", help="write one question set's candidates and signals")
    dump.add_argument("--book", type=Path, required=True)
    dump.add_argument("--questions", type=Path, required=True)
    dump.add_argument("--out", type=Path, required=True)
    fitting = commands.add_parser("fit", help="fit on the even rows of the dumps, report both")
    fitting.add_argument("dumps", nargs="+", type=Path)
    fitting.add_argument("--features", default=",".join(FEATURES), help="comma-separated")
    fitting.add_argument("--l2", type=float, default=1.0)
    args = parser.parse_args()
    if args.command == "dump":
        _dump(args.book.resolve(), args.questions, args.out)
        return
    names = tuple(n for n in args.features.split(",") if n)
    unknown = sorted(set(names) - set(FEATURES))
    if unknown:
        raise SystemExit(f"unknown features {unknown}; known: {', '.join(FEATURES)}")
    _fit(args.dumps, names, args.l2)


if __name__ == "__main__":
    main()
