"""The answer benchmark's fitting tools: the dump it writes, the sentence model's fit."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from ragsite.rag.types import Chunk
from tests.conftest import import_script

BENCH_DIR = Path(__file__).resolve().parent.parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def fitting():
    return import_script(BENCH_DIR, "fit_sentence_model")


def _group(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sentences with two features: the first marks the answer (with noise), the second
    is noise alone; exactly one sentence holds the answer."""
    x = rng.normal(size=(size, 2))
    y = np.zeros(size)
    answer = int(rng.integers(size))
    x[answer, 0] += 2.5
    y[answer] = 1.0
    return x, y


def test_the_fit_learns_which_feature_marks_the_answer_and_ranks_held_out_rows(fitting):
    rng = np.random.default_rng(7)
    train = [(2 * i, *_group(rng, 12)) for i in range(80)]
    held_out = [(2 * i + 1, *_group(rng, 12)) for i in range(80)]
    free = np.array([True, True])
    w = fitting.fit(train, free=free, fixed_weights=np.zeros(0), l2=1.0)
    assert w[0] > 1.0
    assert abs(w[1]) < 0.5 * w[0]
    scores = [x @ w for _, x, _ in held_out]
    # By chance one in twelve would be first; the fitted model gets most of them.
    assert fitting.top(held_out, scores, 1) >= 50
    assert fitting.top(held_out, scores, 3) >= fitting.top(held_out, scores, 1)


def test_a_fixed_weight_stays_as_set_and_the_others_fit_around_it(fitting):
    rng = np.random.default_rng(11)
    train = [(2 * i, *_group(rng, 10)) for i in range(60)]
    free = np.array([False, True])  # the answer's feature is fixed by hand at 3.0
    w = fitting.fit(train, free=free, fixed_weights=np.array([3.0]), l2=1.0)
    assert w.shape == (1,)  # only the free weight is fitted
    assert abs(w[0]) < 0.5


FORMS = "A crate can come in one of two forms."
SMALLEST = "A crate is the smallest amount of code that the Rust compiler considers at a time."


def _crate_chunk(body: str) -> Chunk:
    """A chunk of the Rust book's "Packages and Crates" with this body."""
    return Chunk(
        id="c1",
        text=f"Crates\n\n{body}",
        body=body,
        title="Packages and Crates",
        heading="Packages and Crates",
        path="ch07-01.md",
        url=None,
        position=0,
        content_hash="h1",
    )


def test_a_dumped_row_reads_back_and_labels_the_sentence_that_holds_the_answer(
    fitting, tmp_path, settings
):
    chunk = _crate_chunk(f"{FORMS} {SMALLEST}")
    row = {
        "index": 0,
        "id": "crate-definition",
        "question": "What is a crate?",
        "answers": ["smallest amount of code that the Rust compiler considers at a time"],
        "sources": [{"n": 1, "score": 0.6, "chunk": dataclasses.asdict(chunk)}],
        "similarities": {
            "A crate can come in one of two forms.": 0.66,
            "A crate is the smallest amount of code that the Rust compiler considers at a "
            "time.": 0.43,
        },
    }
    dump = tmp_path / "rust.jsonl"
    dump.write_text(json.dumps(row) + "\n")
    rows = fitting._read(dump)
    assert rows[0]["sources"][0].chunk == chunk
    (index, features, labels), *_ = fitting._groups(rows, meaning=True)
    assert index == 0
    assert labels.tolist() == [0.0, 1.0]
    assert features[:, 0].tolist() == [0.66, 0.43]  # the cosine is the first feature


def test_the_first_sentence_with_code_counts_the_block_it_introduces():
    quality = import_script(BENCH_DIR, "answer_quality")
    command = (
        "To format any Cargo project, enter the following [1]:\n\n```console\n$ cargo fmt\n```"
        "\n\nThe tool reformats your code [1]."
    )
    assert (
        quality.first_sentence(command) == "To format any Cargo project, enter the following [1]:"
    )
    assert quality.first_statement(command).endswith("```console\n$ cargo fmt\n```")
    alone = "[2]:\n\n~~~\nros2 topic hz /scan\n~~~\n\nMore [3]."
    assert quality.first_statement(alone) == "[2]:\n\n~~~\nros2 topic hz /scan\n~~~"
    # A sentence that ends in a full stop introduces nothing: the block after it is not counted.
    prose = "Cargo formats code [1].\n\n[2]:\n\n```console\n$ cargo fmt\n```"
    assert quality.first_statement(prose) == "Cargo formats code [1]."


def _rerank_dump(rng: np.random.Generator, questions: int) -> dict:
    """Candidates whose `heading` marks the hit while the hand-set order ranks it anywhere."""
    rows = []
    for row in range(questions):
        answer = int(rng.integers(10))
        candidates = [
            {
                "id": f"q{row}c{i}",
                "path": f"page{i % 4}.md",
                "hit": i == answer,
                "first": float(rng.random()),
                "sentence": float(rng.random()),
                "second_sentence": float(rng.random()),
                "maxsim_raw": None if i == 9 else float(rng.random()),
                "cosine": float(rng.random()),
                "dense": float(rng.random()),
                "bm25": float(rng.random()),
                "dense_rank": 1 / (1 + i),
                "bm25_rank": 0.0,
                "heading": 0.9 if i == answer else float(rng.random()) * 0.5,
            }
            for i in range(10)
        ]
        order = [c["id"] for c in candidates]
        rows.append({"id": f"q{row}", "row": row, "candidates": candidates, "order": order})
    return {"book": "synthetic", "questions": rows}


def test_the_rerank_fit_finds_the_signal_the_hand_set_order_lacks(tmp_path, capsys):
    rerank = import_script(BENCH_DIR, "fit_rerank")
    dump = tmp_path / "synthetic.json"
    dump.write_text(json.dumps(_rerank_dump(np.random.default_rng(5), 60)))

    x, y = rerank._matrix(json.loads(dump.read_text())["questions"][0], ("maxsim", "page"))
    assert y.sum() == 1
    assert x[9, 0] == 0.0  # no signature: the lowest MaxSim, scaled to 0
    assert x[:, 0].max() == 1.0
    assert x[0, 1] == pytest.approx(np.log1p(2))  # two other candidates on page0.md

    rerank._fit([dump], ("first", "heading"), 1.0)
    lines = capsys.readouterr().out.splitlines()
    odd = next(i for i, line in enumerate(lines) if "odd (held out)" in line)
    hand, fitted = lines[odd], lines[odd + 1]
    assert "R@1 1.000" in fitted  # the heading feature puts every hit first
    assert "R@1 1.000" not in hand
    assert rerank._figures([[False, True], [False] * 10]) == (
        "R@1 0.000  R@5 0.500  R@10 0.500  MRR 0.250"
    )


def test_the_rerank_term_features_count_the_question_terms_held_and_held_close():
    rerank = import_script(BENCH_DIR, "fit_rerank")
    terms = {"mutex", "lock", "thread"}
    near = ["mutex", "lock", "thread", *["filler"] * 30]
    apart = ["mutex", *["filler"] * 20, "lock", *["filler"] * 20, "thread"]
    assert rerank._term_features(terms, near) == {"coverage": 1.0, "proximity": 1.0}
    assert rerank._term_features(terms, apart) == {
        "coverage": 1.0,
        "proximity": pytest.approx(1 / 3),
    }
    assert rerank._term_features(terms, ["lock"]) == {
        "coverage": pytest.approx(1 / 3),
        "proximity": pytest.approx(1 / 3),
    }
    assert rerank._term_features(set(), near) == {"coverage": 0.0, "proximity": 0.0}
    assert rerank._term_features(terms, []) == {"coverage": 0.0, "proximity": 0.0}


def test_the_fit_reads_a_sources_found_text_as_the_answerer_does(tmp_path):
    fitting = import_script(BENCH_DIR, "fit_sentence_model")
    chunk = _crate_chunk(FORMS)
    after = SMALLEST
    source = {
        "n": 1,
        "score": 0.6,
        "chunk": dataclasses.asdict(chunk),
        "after": after,
        "found_around": [[after, 1]],  # as answer_quality.py --dump writes it
    }
    row = {
        "index": 0,
        "id": "crate",
        "question": "What is a crate?",
        "answers": [],
        "sources": [source],
    }
    dump = tmp_path / "rust.jsonl"
    dump.write_text(json.dumps(row) + "\n")
    [read] = fitting._read(dump)[0]["sources"]
    assert read.after == after
    assert read.found_around == ((after, 1),)
