"""Retrieval evaluation: the hit rule and metrics on hand-made cases, the question set's
integrity, the eval_retrieval command's errors, and a small real evaluation (real chunker,
real embedder, real in-memory Qdrant, the real retrieval path) on part of the textbook."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from evaluation.baselines import Bm25Baseline
from evaluation.hits import (
    contains_answer,
    first_hit_rank,
    is_hit,
    normalise,
    passage_occurs,
    path_matches,
    shingle_overlap,
    words,
)
from evaluation.metrics import median_tokens, method_score, mrr_at, recall_at
from evaluation.questions import (
    DUPLICATE_ID_MESSAGE,
    LINE_FIELD_MESSAGE,
    LINE_NOT_JSON_MESSAGE,
    QUESTIONS_MISSING_MESSAGE,
    EvaluationError,
    Question,
    questions_load,
    questions_parse,
)
from evaluation.report import EvaluationReport, report_table
from evaluation.runner import BM25, DENSE, HYBRID, HYBRID_RAW, retrieval_evaluate
from ragsite.rag.types import Chunk, sha256_text

REPO_DIR = Path(__file__).resolve().parents[2]
QUESTION_SET = REPO_DIR / "benchmarks" / "questions" / "textbook.jsonl"
# The first 48 rows, which the floors below were measured on; later rows are appended.
FIRST_SET_SIZE = 48

GOLD = (
    "The Zero Moment Point is fundamental to bipedal locomotion. It's the point on the "
    "ground where the total moment of all forces acting on the robot equals zero."
)
ZMP = Question(
    id="zmp",
    question="Which point decides whether a biped stays balanced?",
    answers=("total moment of all forces",),
    gold_file="part-3/chapter-10-balance.mdx",
    gold_text=GOLD,
)


def make_chunk(text: str, path: str = "part-3/chapter-10-balance.mdx", n: int = 0) -> Chunk:
    return Chunk(
        id=f"c{n}",
        text=text,
        body=text,
        title="t",
        heading="",
        path=path,
        url=None,
        position=n,
        content_hash=sha256_text(text),
        token_count=len(text.split()),
    )


# --- normalisation -------------------------------------------------------------------------


def test_normalise_applies_nfkc_casefold_and_collapses_whitespace():
    assert normalise("  Ｆｕｌｌ-width\u00a0\tSTRASSE\n\nﬁle ") == "full-width strasse file"
    assert normalise("Straße") == normalise("STRASSE")


def test_words_ignore_markdown_and_punctuation():
    assert words("**Zero** `Moment` _point_: (ZMP)!") == ["zero", "moment", "_point_", "zmp"]


# --- the answer rule -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "answer", "expected"),
    [
        ("the Zero Moment Point (ZMP) theory", "ZMP", True),
        ("many ZMPs were computed", "ZMP", False),  # not on a word boundary
        ("Edge Kit (~$700) for beginners", "$700", True),  # symbols at the edges
        ("costs $7000 in total", "$700", False),
        ("the TOTAL   moment\nof all forces", "total moment of all forces", True),
        ("a 40 TOPS device", "40 tops", True),
        ("uses nvidia-smi -pm 1 at boot", "nvidia-smi -pm 1", True),
        ("uses nvidia-smi -pm 10 at boot", "nvidia-smi -pm 1", False),
        ("anything", "   ", False),
    ],
)
def test_contains_answer_matches_on_word_boundaries_after_normalising(text, answer, expected):
    assert contains_answer(text, answer) is expected


# --- the path rule -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunk_path", "gold", "expected"),
    [
        ("part-1/chapter-2.mdx", "part-1/chapter-2.mdx", True),
        ("books/textbook/part-1/chapter-2.mdx", "part-1/chapter-2.mdx", True),
        ("part-1/chapter-2.mdx", "chapter-2.mdx", True),
        ("xpart-1/chapter-2.mdx", "part-1/chapter-2.mdx", False),  # whole components only
        ("part-1/my-chapter-2.mdx", "chapter-2.mdx", False),
        ("part-1\\chapter-2.mdx", "./part-1/chapter-2.mdx", True),
        ("chapter-2.mdx", "part-1/chapter-2.mdx", False),
        ("part-1/chapter-3.mdx", "part-1/chapter-2.mdx", False),
    ],
)
def test_path_matches_is_a_suffix_match_on_path_components(chunk_path, gold, expected):
    assert path_matches(chunk_path, gold) is expected


# --- the shingle rule ----------------------------------------------------------------------


def test_chunk_holding_the_whole_gold_passage_is_a_hit_by_shingles():
    chunk = "Balance Theory\n\n" + GOLD + " Below, a ZMP analyser in Python follows."
    assert shingle_overlap(chunk, GOLD)


def test_chunk_holding_half_of_the_gold_shingles_is_a_hit():
    gold_words = words(GOLD)
    assert len(gold_words) == 29  # 25 five-word shingles; half is 12.5
    padding = " ".join(f"filler{i}" for i in range(200))  # keeps the chunk's own share low
    thirteen = " ".join(gold_words[:17])  # 17 words hold 13 gold shingles
    assert shingle_overlap(thirteen + " " + padding, GOLD)
    twelve = " ".join(gold_words[:16])  # 12 of 25: less than half
    assert not shingle_overlap(twelve + " " + padding, GOLD)


def test_short_chunk_lying_inside_the_gold_passage_is_a_hit_by_its_own_shingles():
    piece = "It's the point on the ground where the total"  # 9 words, all inside GOLD
    assert shingle_overlap(piece, GOLD)
    # A long gold passage the chunk covers only a small part of still counts.
    long_gold = GOLD + " " + " ".join(f"more{i}" for i in range(300))
    assert shingle_overlap(piece, long_gold)


def test_unrelated_or_empty_text_shares_no_shingles():
    assert not shingle_overlap("A PID controller computes a command from the error.", GOLD)
    assert not shingle_overlap("", GOLD)


# --- the hit rule --------------------------------------------------------------------------


def test_is_hit_needs_the_gold_file_and_an_answer_or_the_passage():
    answer_only = "In short, the total moment of all forces vanishes there."
    assert is_hit(path="part-3/chapter-10-balance.mdx", text=answer_only, question=ZMP)
    assert is_hit(path="book/part-3/chapter-10-balance.mdx", text=GOLD, question=ZMP)
    # The right words in another file are not a hit: the reader would cite the wrong page.
    assert not is_hit(path="part-1/chapter-4-motion.mdx", text=GOLD, question=ZMP)
    # The right file without the answer or the passage is not a hit either.
    other = "Walking pattern generators plan foot trajectories with cubic splines."
    assert not is_hit(path="part-3/chapter-10-balance.mdx", text=other, question=ZMP)


def test_first_hit_rank_is_the_rank_of_the_first_hit():
    chunks = [
        make_chunk("Foot trajectories use splines.", n=0),
        make_chunk(GOLD, path="part-1/other.mdx", n=1),
        make_chunk(GOLD, n=2),
        make_chunk(GOLD, n=3),
    ]
    assert first_hit_rank(chunks, ZMP) == 3
    assert first_hit_rank(chunks[:2], ZMP) is None
    assert first_hit_rank([], ZMP) is None


# --- metrics -------------------------------------------------------------------------------


def test_recall_and_mrr_on_hand_made_ranks():
    ranks = [1, 3, None, 7, 12]
    assert recall_at(ranks, 1) == pytest.approx(1 / 5)
    assert recall_at(ranks, 5) == pytest.approx(2 / 5)
    assert recall_at(ranks, 10) == pytest.approx(3 / 5)
    # Rank 12 is beyond the cutoff and counts as a miss.
    assert mrr_at(ranks, 10) == pytest.approx((1 + 1 / 3 + 1 / 7) / 5)
    assert recall_at([], 5) == 0.0
    assert mrr_at([], 10) == 0.0


def test_method_score_reports_each_cutoff_and_mrr_at_k():
    scores = method_score(
        method=HYBRID,
        label="hybrid",
        question_ids=["a", "b", "c", "d"],
        ranks=[1, 2, 6, None],
        k=10,
    )
    assert scores.recall == {1: 0.25, 5: 0.5, 10: 0.75}
    assert scores.mrr == pytest.approx((1 + 1 / 2 + 1 / 6) / 4)
    data = scores.as_dict()
    assert data["recall@5"] == 0.5
    assert data["mrr@10"] == pytest.approx(0.4167, abs=1e-4)
    assert data["ranks"] == {"a": 1, "b": 2, "c": 6, "d": None}
    # A shallower search reports the cutoffs it can measure, and MRR at its depth.
    shallow = method_score(method=HYBRID, label="h", question_ids=["a"], ranks=[2], k=3)
    assert set(shallow.recall) == {1, 3}
    assert shallow.as_dict()["mrr@3"] == 0.5


def test_median_tokens_uses_token_counts_and_counts_the_rest():
    chunks = [make_chunk("a b c", n=0), make_chunk("a b c d e", n=1), make_chunk("x", n=2)]
    assert median_tokens(chunks) == 3.0
    zero = dataclasses.replace(make_chunk("one two three four five six seven", n=3), token_count=0)
    assert median_tokens([zero], count=lambda text: len(text.split())) == 7.0
    assert median_tokens([]) == 0.0


# --- the BM25 baseline ---------------------------------------------------------------------


def test_bm25_ranks_by_shared_terms_with_the_sparse_tokeniser():
    chunks = [
        make_chunk("Kalman filters fuse IMU and GPS measurements.", n=0),
        make_chunk("Depth sensors measure distance; LiDAR sensors sweep lasers.", n=1),
        make_chunk("A PID controller tunes three gains.", n=2),
    ]
    bm25 = Bm25Baseline(chunks)
    # "sensor" matches "sensors" through the sparse encoder's plural rule.
    assert [c.id for c in bm25.search("Which sensor uses lasers?", 2)] == ["c1"]
    assert bm25.search("PID gains", 1)[0].id == "c2"
    assert bm25.search("the of and", 5) == []  # stopwords only
    assert Bm25Baseline([]).search("lidar", 5) == []


# --- question files ------------------------------------------------------------------------


def test_questions_parse_reads_valid_lines_and_skips_blank_ones():
    line = json.dumps(
        {"id": "q1", "question": "Q?", "answers": ["a"], "gold_file": "f.md", "gold_text": "t"}
    )
    questions = questions_parse([line, "", "  "])
    assert questions == [Question("q1", "Q?", ("a",), "f.md", "t")]


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", LINE_NOT_JSON_MESSAGE.split("(")[0]),
        ('["a list"]', "expected a JSON object, got list"),
        ('{"id": "q2", "question": "Q?", "answers": [], "gold_file": "f", "gold_text": "t"}',
         "field 'answers' must be a non-empty list"),
        ('{"id": "q2", "question": "", "answers": ["a"], "gold_file": "f", "gold_text": "t"}',
         "field 'question' must be a non-empty string"),
    ],
)  # fmt: skip
def test_questions_parse_names_the_bad_line(bad_line, message):
    good = json.dumps(
        {"id": "q1", "question": "Q?", "answers": ["a"], "gold_file": "f.md", "gold_text": "t"}
    )
    with pytest.raises(EvaluationError) as caught:
        questions_parse([good, "", bad_line], source="set.jsonl")
    text = str(caught.value)
    assert text.startswith("set.jsonl, line 3: ")
    assert message.format(source="set.jsonl", line=3) in text


def test_questions_parse_rejects_a_repeated_id():
    line = json.dumps(
        {"id": "q1", "question": "Q?", "answers": ["a"], "gold_file": "f.md", "gold_text": "t"}
    )
    with pytest.raises(EvaluationError) as caught:
        questions_parse([line, line], source="s")
    assert str(caught.value) == DUPLICATE_ID_MESSAGE.format(source="s", line=2, id="q1", first=1)


def test_questions_load_reports_a_missing_file(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(EvaluationError) as caught:
        questions_load(missing)
    assert str(caught.value) == QUESTIONS_MISSING_MESSAGE.format(path=missing)


# --- the question set's integrity ----------------------------------------------------------


def test_question_set_is_sound_and_covers_every_page(textbook_dir):
    questions = questions_load(QUESTION_SET)
    assert len(questions) >= FIRST_SET_SIZE  # the set only grows (benchmarks/questions/)
    assert len({q.id for q in questions}) == len(questions)
    pages = {p.relative_to(textbook_dir).as_posix() for p in textbook_dir.rglob("*.md*")}
    assert {q.gold_file for q in questions} == pages, "every page of the book has a question"
    for q in questions:
        source = (textbook_dir / q.gold_file).read_text(encoding="utf-8")
        assert 20 <= len(words(q.gold_text)) <= 80, q.id
        assert passage_occurs(q.gold_text, source), f"{q.id}: gold_text is not in {q.gold_file}"
        assert 1 <= len(q.answers) <= 3, q.id
        for answer in q.answers:
            assert contains_answer(q.gold_text, answer), f"{q.id}: {answer!r} not in gold_text"
            assert contains_answer(source, answer), f"{q.id}: {answer!r} not in {q.gold_file}"
        # Questions are a reader's words, not a copy of the passage.
        assert not passage_occurs(q.question, source), f"{q.id}: question copies the book"


def test_passage_occurs_ignores_markup_but_not_word_order():
    source = "## Balance\n\nThe **Zero Moment Point** is `fundamental`\nto bipedal locomotion."
    assert passage_occurs("The Zero Moment Point is fundamental to bipedal locomotion.", source)
    assert not passage_occurs("The Moment Zero Point is fundamental", source)
    assert not passage_occurs("", source)


# --- the report ----------------------------------------------------------------------------


def test_report_table_shows_every_method_and_the_chunk_statistics():
    ids = ["a", "b"]
    report = EvaluationReport(
        book="/books/textbook", k=10, questions=2, pages=3, chunks=40, median_chunk_tokens=187.5,
        chunk_tokens=256, chunk_overlap_tokens=32, score_floor=0.3, embedder="local: minilm",
        methods=[
            method_score(method=HYBRID, label="hybrid (book_search)", question_ids=ids, ranks=[1, None], k=10),
            method_score(method=BM25, label="bm25 only", question_ids=ids, ranks=[2, 4], k=10),
        ],
        unsupported=["b"], seconds_ingest=12.0, seconds_search=3.5,
    )  # fmt: skip
    table = report_table(report)
    assert "method  R@1  R@5  R@10  MRR@10".split() in [line.split() for line in table.splitlines()]
    rows = {line.split("  ")[0]: line.split()[-4:] for line in table.splitlines()}
    assert rows["hybrid (book_search)"] == ["0.500", "0.500", "0.500", "0.500"]
    assert rows["bm25 only"] == ["0.000", "1.000", "1.000", "0.375"]
    assert "questions: 2   pages: 3   chunks: 40   median chunk: 187.5 tokens" in table
    assert "no hit above the score floor for 1 question(s): b" in table
    assert "time: 15.5 s" in table
    data = report.as_dict()
    assert data["seconds"]["total"] == 15.5
    assert [m["method"] for m in data["methods"]] == [HYBRID, BM25]


# --- the command's errors ------------------------------------------------------------------


def test_command_reports_a_missing_question_file(tmp_path):
    missing = tmp_path / "missing.jsonl"
    with pytest.raises(CommandError) as caught:
        call_command("eval_retrieval", str(missing), "--book", str(tmp_path))
    assert str(caught.value) == QUESTIONS_MISSING_MESSAGE.format(path=missing)


def test_command_reports_the_line_of_a_bad_question(tmp_path):
    questions = tmp_path / "set.jsonl"
    good = {"id": "q1", "question": "Q?", "answers": ["a"], "gold_file": "f.md", "gold_text": "t"}
    questions.write_text(
        json.dumps(good) + "\n" + json.dumps({**good, "id": "q2", "gold_file": 3}) + "\n"
    )
    with pytest.raises(CommandError) as caught:
        call_command("eval_retrieval", str(questions), "--book", str(tmp_path))
    assert str(caught.value) == LINE_FIELD_MESSAGE.format(
        source=questions, line=2, problem="field 'gold_file' must be a non-empty string"
    )


def test_command_rejects_a_book_that_is_not_a_folder(tmp_path):
    with pytest.raises(CommandError, match="--book must be a folder"):
        call_command("eval_retrieval", str(QUESTION_SET), "--book", str(tmp_path / "nope"))


# --- a small real evaluation ---------------------------------------------------------------

# Seven pages (about 160 chunks) holding 15 of the 48 questions: lab guides with shell
# and Python samples, and prose chapters; chosen for their size, before measuring.
SUBSET_PAGES = (
    "intro.md",
    "lab-infrastructure/budget-calculator.mdx",
    "lab-infrastructure/workstation-setup/index.mdx",
    "lab-infrastructure/workstation-setup/gpu-optimization.mdx",
    "part-1-foundations/chapter-1-introduction.mdx",
    "part-1-foundations/chapter-2-sensors-perception.mdx",
    "part-1-foundations/chapter-3-state-estimation.mdx",
)
# The real retrieval path (book_search) measured 0.600 / 0.933 / 0.933 / MRR 0.736 on
# this subset (2 December, with late interaction; 0.600 / 0.867 / 0.867 / 0.700 when
# docs/retrieval-quality.md first measured it); each floor leaves one question of slack.
HYBRID_FLOORS = {"recall@1": 0.53, "recall@5": 0.86, "recall@10": 0.86, "mrr@10": 0.66}
# The whole textbook (123 questions): 0.691 / 0.943 / 0.959 / 0.792 with late
# interaction, 0.626 / 0.902 / 0.935 / 0.734 without (docs/retrieval-quality.md); the
# floors sit between the two, about two questions under the figures with it.
WHOLE_BOOK_FLOORS = {"recall@1": 0.66, "recall@5": 0.925, "recall@10": 0.94, "mrr@10": 0.77}


def test_small_real_evaluation_stays_above_the_floors(textbook_dir):
    first_set = questions_load(QUESTION_SET)[:FIRST_SET_SIZE]  # the floors' questions
    questions = [q for q in first_set if q.gold_file in SUBSET_PAGES]
    assert len(questions) == 15
    report = retrieval_evaluate(
        questions=questions, book_dir=textbook_dir, k=10, baselines=True, pages=SUBSET_PAGES
    )
    assert report.pages == len(SUBSET_PAGES)
    assert report.questions == 15
    assert 0 < report.median_chunk_tokens <= 256
    hybrid = report.method(HYBRID).as_dict()
    measured = {name: hybrid[name] for name in HYBRID_FLOORS}
    below = {name: value for name, value in measured.items() if value < HYBRID_FLOORS[name]}
    assert not below, f"book_search fell below its floors: {measured}"
    # Fusion must not lose to either of its halves run alone on the same chunks. (The
    # score floor of book_search is compared separately: see docs/retrieval-quality.md.)
    fused = report.method(HYBRID_RAW).recall[5]
    assert fused >= report.method(BM25).recall[5]
    assert fused >= report.method(DENSE).recall[5]


def test_the_whole_textbook_keeps_what_late_interaction_gained(textbook_dir):
    questions = questions_load(QUESTION_SET)
    report = retrieval_evaluate(questions=questions, book_dir=textbook_dir, k=10, baselines=True)
    assert report.questions == len(questions) == 123
    hybrid = report.method(HYBRID).as_dict()
    measured = {name: hybrid[name] for name in WHOLE_BOOK_FLOORS}
    below = {n: v for n, v in measured.items() if v < WHOLE_BOOK_FLOORS[n]}
    assert not below, f"book_search fell below its whole-book floors: {measured}"
    # The rule: never below the store's own fusion or either channel, at any k.
    ranks = {m: list(report.method(m).ranks.values()) for m in (HYBRID, HYBRID_RAW, BM25, DENSE)}
    for k in range(1, 11):
        ours = recall_at(ranks[HYBRID], k)
        others = {m: recall_at(ranks[m], k) for m in (HYBRID_RAW, BM25, DENSE)}
        assert all(ours >= value for value in others.values()), (k, ours, others)


def test_command_prints_the_table_and_writes_the_figures(tmp_path, textbook_dir, capsys):
    book = tmp_path / "book"
    pages = ["intro.md", "lab-infrastructure/budget-calculator.mdx"]
    for page in pages:
        (book / page).parent.mkdir(parents=True, exist_ok=True)
        (book / page).write_bytes((textbook_dir / page).read_bytes())
    questions = tmp_path / "set.jsonl"
    lines = [
        line
        for line in QUESTION_SET.read_text().splitlines()[:FIRST_SET_SIZE]
        if json.loads(line)["gold_file"] in pages
    ]
    questions.write_text("\n".join(lines) + "\n")
    out = tmp_path / "figures" / "eval.json"

    call_command(
        "eval_retrieval", str(questions), "--book", str(book), "-k", "5", "--json", str(out)
    )

    printed = capsys.readouterr().out
    assert "method  R@1  R@5  MRR@5".split() in [line.split() for line in printed.splitlines()]
    assert "questions: 2   pages: 2" in printed
    assert f"figures written to {out}" in printed
    figures = json.loads(out.read_text())
    assert figures["questions"] == 2
    assert figures["k"] == 5
    assert [m["method"] for m in figures["methods"]] == [HYBRID]  # no --baselines
    assert set(figures["methods"][0]["ranks"]) == {"intro-prerequisites", "budget-edge-kit"}
    assert figures["chunks"] > 0
    assert figures["median_chunk_tokens"] > 0
