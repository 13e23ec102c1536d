"""Fit the extractive answerer's sentence model (ragsite/rag/scoring.py) on question sets.

Input: the files `answer_quality.py --dump` (JSON lines) writes, one per question set: for every
in-book question its sources as the chat packs them and every quotable sentence's
cosine with the question. A sentence is a positive when it (with the list it
introduces) holds one of the question's answers (`evaluation.hits.contains_answer`).

The model is a conditional logit: one softmax over each question's sentences, fitted by
damped Newton steps with an L2 penalty, on the **even rows** of each set only (0-based
row index in the question file); the odd rows are held out and reported apart. The form
weights `FIXED_FORM` stay as set by hand. The bias (which only matters for KEEP_RATIO)
is then fitted pointwise with the slope fixed. Prints the tuples to paste into
scoring.py (to one decimal), and how often the best-scored sentence (and the best 3 or 5) holds an answer.

    uv run python benchmarks/answer_quality.py ... --dump /tmp/rust.jsonl
    uv run python benchmarks/fit_sentence_model.py /tmp/rust.jsonl /tmp/textbook.jsonl /tmp/docs.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

REPO_DIR = Path(__file__).resolve().parent.parent


def _read(path: Path) -> list[dict]:
    """A dump's rows with their sources rebuilt as `Source`s."""
    from ragsite.rag.types import Chunk, Source

    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for row in rows:
        row["sources"] = [
            Source(
                n=s["n"],
                chunk=Chunk(**s["chunk"]),
                score=s["score"],
                snippet="",
                before=s.get("before", ""),
                after=s.get("after", ""),
                found_around=tuple((text, rank) for text, rank in s.get("found_around", [])),
            )
            for s in row["sources"]
        ]
    return rows


def _groups(rows: list[dict], *, meaning: bool) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Per question: (row index, features of each sentence, 1 where it holds an answer)."""
    from evaluation.hits import contains_answer
    from ragsite.rag import scoring
    from ragsite.rag.extractive import _prepare

    groups = []
    for row in rows:
        sentences, _, weights = _prepare(row["question"], row["sources"])
        if not sentences:
            continue
        similarities = row["similarities"] if meaning else None
        context = scoring._context(sentences, weights, similarities, row["question"])
        features = np.array(
            [[*scoring._features(s, context), *s.form] for s in sentences], dtype=float
        )
        labels = np.array(
            [
                any(contains_answer(" ".join((s.text, *s.items)), a) for a in row["answers"])
                for s in sentences
            ],
            dtype=float,
        )
        groups.append((row["index"], features, labels))
    return groups


def _objective(groups, w, l2):
    """Negative log-likelihood of the positives (+ L2), its gradient and a PD Hessian bound."""
    grad, hessian, loss = l2 * w, np.eye(len(w)) * l2, 0.5 * l2 * w @ w
    for x, offset, y in groups:
        z = x @ w + offset
        p = np.exp(z - z.max())
        p /= p.sum()
        mass = max(float(p @ y), 1e-300)
        q = p * y / mass
        loss -= math.log(mass)
        mean_p, mean_q = p @ x, q @ x
        grad = grad + mean_p - mean_q
        hessian = hessian + (x * p[:, None]).T @ x - np.outer(mean_p, mean_p)
    return loss, grad, hessian


def fit(groups, *, free: np.ndarray, fixed_weights: np.ndarray, l2: float) -> np.ndarray:
    """The weights of the free features (`free` masks them); the others keep theirs."""
    data = [(x[:, free], x[:, ~free] @ fixed_weights, y) for _, x, y in groups]
    w = np.zeros(int(free.sum()))
    loss, grad, hessian = _objective(data, w, l2)
    for _ in range(100):
        step, t = np.linalg.solve(hessian, grad), 1.0
        while True:  # damped: halve the step until the loss does not rise
            candidate = w - t * step
            new_loss, new_grad, new_hessian = _objective(data, candidate, l2)
            if new_loss <= loss or t < 1e-4:
                break
            t /= 2
        done = loss - new_loss < 1e-7
        w, loss, grad, hessian = candidate, new_loss, new_grad, new_hessian
        if done:
            break
    return w


def _bias(groups, scores) -> float:
    """The intercept of a pointwise logistic fit of the labels on the scores (slope 1):
    where the predicted positives add up to the real ones (bisection; it is monotone)."""
    z = np.concatenate(scores)
    positives = float(np.concatenate([g[2] for g in groups]).sum())
    low, high = -30.0, 30.0
    for _ in range(60):
        middle = (low + high) / 2
        if (1 / (1 + np.exp(-np.clip(z + middle, -50, 50)))).sum() > positives:
            high = middle
        else:
            low = middle
    return (low + high) / 2


def top(groups, scores, k: int) -> int:
    """How many questions have an answer among their k best-scored sentences."""
    return sum(
        int(y[np.argsort(-s, kind="stable")[:k]].any())
        for (_, _, y), s in zip(groups, scores, strict=True)
    )


def main() -> None:
    """Fit on the even rows of every dump, report even and odd rows, print the weights."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("dumps", nargs="+", type=Path)
    parser.add_argument("--l2", type=float, default=1.0)
    args = parser.parse_args()
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")
    sys.path.insert(0, str(REPO_DIR))
    import django

    django.setup()
    from ragsite.rag import scoring

    sets = {path.stem: _read(path) for path in args.dumps}
    n_question = len(scoring.MEANING_WEIGHTS) - 1
    n_form = len(scoring.FORM_WEIGHTS)
    free = np.ones(n_question + n_form, dtype=bool)
    for index in scoring.FIXED_FORM:
        free[n_question + index] = False
    fixed_weights = np.array([scoring.FORM_WEIGHTS[i] for i in scoring.FIXED_FORM])
    form = None  # the word-only fit keeps the form weights of the fit with meaning
    for meaning, name in ((True, "MEANING_WEIGHTS"), (False, "WORD_WEIGHTS")):
        groups = {stem: _groups(rows, meaning=meaning) for stem, rows in sets.items()}
        train = [g for gs in groups.values() for g in gs if g[0] % 2 == 0 and g[2].any()]
        free_here = free.copy()
        if form is None:
            fixed_here = fixed_weights
        else:
            free_here[0] = False  # no cosine without sentence vectors
            free_here[n_question:] = False
            fixed_here = np.concatenate([[0.0], form])
        w = fit(train, free=free_here, fixed_weights=fixed_here, l2=args.l2)
        weights = np.zeros(len(free_here))
        weights[free_here] = w
        weights[~free_here] = fixed_here
        form = weights[n_question:]
        bias = _bias(train, [x @ weights for _, x, _ in train])
        print(f"{name} = {tuple(round(float(v), 1) for v in [bias, *weights[:n_question]])}")
        if meaning:
            print(f"FORM_WEIGHTS = {tuple(round(float(v), 1) for v in form)}")
        for stem, gs in groups.items():
            for part in (0, 1):
                rows = [g for g in gs if g[0] % 2 == part]
                scores = [x @ weights for _, x, _ in rows]
                held = "even (fitted)" if part == 0 else "odd (held out)"
                print(
                    f"  {stem:10s} {held:15s} questions {len(rows):3d}, with an answer sentence"
                    f" {sum(int(g[2].any()) for g in rows):3d}: best holds it"
                    f" {top(rows, scores, 1):3d}, best 3 {top(rows, scores, 3):3d},"
                    f" best 5 {top(rows, scores, 5):3d}"
                )


if __name__ == "__main__":
    main()
