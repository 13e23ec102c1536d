"""Retrieval and query rewriting on the small book: what the reader's question finds."""

from __future__ import annotations

import dataclasses

import pytest

from chat.prompts import Turn
from chat.services import book_search, hits_collapse, query_rewrite, query_rewrite_rule
from chat.services.retrieval import (
    BLEND_RRF_K,
    STORE_RRF_K,
    STRAY_NAME_HITS,
    Evidence,
    book_supports,
    evidence_gather,
    hits_blend,
    hits_distinct_sections,
    hits_fuse,
    query_in_lower_case,
    query_names,
    query_rare_terms,
    query_scopes,
)
from chat.services.rewriting import key_terms, looks_like_follow_up
from ragsite.rag import providers
from ragsite.rag.extractive import ExtractiveChatModel, extractive_answer
from ragsite.rag.types import Hit, Source

LIDAR_TURN = Turn(question="How does LiDAR measure distance?", answer="By timing laser pulses [1].")


# --- rewriting (the deterministic rule) ----------------------------------------------------


def test_follow_up_gets_the_topic_of_the_previous_question():
    query = query_rewrite_rule(message="what about its cost?", history=[LIDAR_TURN])
    assert "LiDAR" in query
    assert "cost" in query


def test_stand_alone_question_is_left_alone():
    message = "How does a PID controller reduce overshoot?"
    assert query_rewrite_rule(message=message, history=[LIDAR_TURN]) == message


def test_chained_follow_ups_keep_the_original_topic():
    history = [LIDAR_TURN, Turn(question="what about its cost?", answer="Thousands [2].")]
    query = query_rewrite_rule(message="and its weight?", history=history)
    assert query.startswith("LiDAR")
    assert "cost" not in query


def test_without_history_nothing_is_rewritten():
    assert query_rewrite_rule(message="what about its cost?", history=[]) == "what about its cost?"


@pytest.mark.parametrize(
    ("message", "follow_up"),
    [
        ("what about its cost?", True),
        ("Why?", True),
        ("And the IMU?", True),
        ("How do they compare?", True),
        ("How does the Kalman filter fuse IMU and wheel odometry?", False),
    ],
)
def test_follow_up_detection(message, follow_up):
    assert looks_like_follow_up(message) is follow_up


def test_key_terms_keep_case_and_drop_scaffolding():
    assert key_terms("How does the ROS 2 launch system work?") == ["ROS", "launch", "system"]


async def test_extractive_model_rewrites_by_rule():
    query = await query_rewrite(
        message="what about its cost?", history=[LIDAR_TURN], llm=ExtractiveChatModel()
    )
    assert query == query_rewrite_rule(message="what about its cost?", history=[LIDAR_TURN])


# --- search ----------------------------------------------------------------------------------


async def test_search_finds_the_section_that_answers(small_book):
    retrieval = await book_search(query="How does LiDAR measure distance?", k=3)
    assert retrieval.supported
    top = retrieval.hits[0].chunk
    assert top.heading == "LiDAR"
    assert top.url == "https://book.example/docs/part-1/chapter-2-sensors#lidar"
    assert len(retrieval.hits) <= 3


async def test_follow_up_rewritten_by_rule_finds_the_cost_section(small_book):
    query = query_rewrite_rule(message="what about its cost?", history=[LIDAR_TURN])
    retrieval = await book_search(query=query, k=2)
    assert "LiDAR > Cost and trade-offs" in [hit.chunk.heading for hit in retrieval.hits]


async def test_out_of_book_question_finds_no_support(small_book):
    retrieval = await book_search(query="How do I bake sourdough bread?", k=5)
    assert not retrieval.supported
    # Search still ranks what it found (GET /api/search shows it); the doubt is separate.
    assert len(retrieval.hits) == 5
    # Nothing is near enough to offer either: cooking is nowhere in a robotics book.
    assert retrieval.closest == []
    assert "sourdough" in retrieval.evidence.missing_terms


async def test_near_domain_question_whose_topic_the_book_lacks_is_not_supported(small_book):
    # Close to the book's domain, but "hydraulic", "excavator" and "boom" are nowhere in it.
    retrieval = await book_search(
        query="How do the hydraulic cylinders of an excavator move its boom?", k=5
    )
    assert retrieval.evidence.missing >= 0.5
    assert not retrieval.supported


async def test_a_search_asked_again_is_answered_from_memory_until_the_index_changes(
    small_book, small_book_index, monkeypatch
):
    store = providers.get_store()
    query = "How does LiDAR measure distance?"
    first = await book_search(query=query, k=3)
    calls: list[str] = []
    real = type(store).search_channels

    def counted(self, **kwargs):
        calls.append(kwargs["query_text"])
        return real(self, **kwargs)

    monkeypatch.setattr(type(store), "search_channels", counted)
    assert await book_search(query=query, k=3) is first
    assert calls == []
    await book_search(query=query, k=2)  # another search: run
    await book_search(query="What does a PID controller trade off?", k=3)
    assert len(calls) == 2
    chunks, vectors = small_book_index
    store.upsert(chunks[:1], vectors[:1])  # a write: the index may have changed
    after = await book_search(query=query, k=3)
    assert after is not first
    assert len(calls) == 3
    assert [hit.chunk.id for hit in after.hits] == [hit.chunk.id for hit in first.hits]


async def test_a_store_that_does_not_say_when_it_changes_is_searched_every_time(
    small_book, monkeypatch
):
    class Unversioned:  # a Qdrant server: other processes write it
        def __init__(self, store):
            self._store = store
            self.mode, self.collection = "server", store.collection

        def __getattr__(self, name):
            if name == "version":
                raise AttributeError(name)
            return getattr(self._store, name)

    store = Unversioned(providers.get_store())
    query = "How does LiDAR measure distance?"
    first = await book_search(query=query, k=3, store=store)
    again = await book_search(query=query, k=3, store=store)
    assert again is not first
    assert [hit.chunk.id for hit in again.hits] == [hit.chunk.id for hit in first.hits]


async def test_fused_ranking_never_loses_what_either_channel_ranks_first(small_book_index):
    chunks, vectors = small_book_index
    store = providers.get_store()
    store.ensure_collection(dimension=len(vectors[0]))
    store.upsert(chunks, vectors)
    embedder = providers.get_embedder()
    for query in (
        "What does a PID controller trade off?",
        "What does the Kalman gain weigh?",
        "Where must the ZMP stay for a humanoid to keep its balance?",
    ):
        [vector] = await embedder.embed([query])
        dense = store.search(query_text=query, query_vector=vector, k=10, mode="dense")
        sparse = store.search(query_text=query, query_vector=vector, k=10, mode="sparse")
        retrieval = await book_search(query=query, k=3)
        top3 = [hit.chunk.id for hit in retrieval.hits]
        # Whatever both channels agree is best is first; each channel's best is kept.
        if dense[0].chunk.id == sparse[0].chunk.id:
            assert top3[0] == dense[0].chunk.id
        assert dense[0].chunk.id in top3 or sparse[0].chunk.id in top3
        assert retrieval.supported


async def test_floor_is_a_setting(small_book, settings):
    settings.RETRIEVAL_SCORE_FLOOR = 0.8  # above any cosine here
    settings.RETRIEVAL_CONFIDENT_SCORE = 0.9
    retrieval = await book_search(query="How does LiDAR measure distance in fog?", k=3)
    assert retrieval.evidence.missing_terms == ("fog",)  # so no leeway below the floor
    assert not retrieval.supported
    assert retrieval.closest[0].chunk.heading == "LiDAR"  # still offered as the closest


async def test_results_are_distinct(small_book):
    retrieval = await book_search(query="LiDAR sensors", k=10, score_floor=0.0)
    ids = [hit.chunk.id for hit in retrieval.hits]
    assert len(ids) == len(set(ids))
    sections = [(hit.chunk.path, hit.chunk.heading) for hit in retrieval.sections]
    assert len(sections) == len(set(sections))


def test_collapse_keeps_neighbouring_pieces_and_drops_only_repeated_text(small_book_index):
    chunks, _ = small_book_index
    lidar, cost, imu = chunks[0], chunks[1], chunks[2]
    # The next piece of the same section: same page and heading, the next position,
    # and text of its own. It is not a repeat.
    second_piece = dataclasses.replace(
        lidar,
        id="piece-2",
        position=lidar.position + 1,
        body="Its range reaches a hundred metres outdoors. " + lidar.body[-60:],
    )
    copy_elsewhere = dataclasses.replace(imu, id="copy", path="appendix.mdx", heading="IMU recap")
    hits = [
        Hit(lidar, 0.8),
        Hit(second_piece, 0.7),
        Hit(cost, 0.6),
        Hit(imu, 0.5),
        Hit(copy_elsewhere, 0.4),
    ]
    kept = [hit.chunk.id for hit in hits_collapse(hits)]
    assert kept == [lidar.id, "piece-2", cost.id, imu.id]
    # Sources need one hit per section: the second piece of LiDAR goes there.
    sections = [hit.chunk.id for hit in hits_distinct_sections(hits_collapse(hits))]
    assert sections == [lidar.id, cost.id, imu.id]


def _hit(chunk, score: float, rank_score: float) -> Hit:
    return Hit(chunk=chunk, score=score, rank_score=rank_score)


def test_minmax_fusion_keeps_score_margins(small_book_index):
    chunks, _ = small_book_index
    a, b, c = chunks[0], chunks[1], chunks[2]
    dense = [_hit(a, 0.60, 0.60), _hit(b, 0.59, 0.59), _hit(c, 0.30, 0.30)]
    # BM25 is sure about b (far above the rest), hardly about a.
    sparse = [_hit(b, 0.55, 12.0), _hit(a, 0.60, 1.0)]
    fused = hits_fuse(dense, sparse, method="minmax", dense_weight=0.5)
    assert [hit.chunk.id for hit in fused] == [b.id, a.id, c.id]
    assert fused[0].score == 0.59  # the dense cosine stays the score
    assert fused[0].rank_score == pytest.approx(0.5 * 0.59 / 0.60 + 0.5 * 1.0)
    # Rank fusion sees only ranks: a and b tie on ranks, the dense order breaks it.
    by_rank = hits_fuse(dense, sparse, method="rrf", dense_weight=0.5)
    assert [hit.chunk.id for hit in by_rank] == [a.id, b.id, c.id]


def test_blend_adds_a_rank_fusion_to_the_score_fusion(small_book_index):
    chunks, _ = small_book_index
    a, b, c = chunks[0], chunks[1], chunks[2]
    dense = [_hit(a, 0.60, 0.60), _hit(b, 0.59, 0.59), _hit(c, 0.30, 0.30)]
    sparse = [_hit(b, 0.55, 12.0), _hit(a, 0.60, 1.0)]
    by_score = hits_fuse(dense, sparse, method="minmax", dense_weight=0.5)
    score = {h.chunk.id: h.rank_score for h in by_score}
    # With the store's constant it is the store's RRF (k = 2, rank from 0): a 1/2 + 1/3,
    # b 1/3 + 1/2, c 1/4.
    store = hits_blend(by_score, dense, sparse, k=STORE_RRF_K)
    expected = {a.id: 1 / 2 + 1 / 3, b.id: 1 / 3 + 1 / 2, c.id: 1 / 4}
    for hit in store:
        assert hit.rank_score == pytest.approx(score[hit.chunk.id] + expected[hit.chunk.id])
    assert [hit.chunk.id for hit in store] == [b.id, a.id, c.id]  # the margin decides a tie
    # The default (k = 1) gives 0.5 / (1 + rank): a chunk first in both still gets 1.
    blended = hits_fuse(dense, sparse, dense_weight=0.5)
    expected = {a.id: 0.5 + 0.25, b.id: 0.25 + 0.5, c.id: 0.5 / 3}
    for hit in blended:
        assert hit.rank_score == pytest.approx(score[hit.chunk.id] + expected[hit.chunk.id])
    assert blended == hits_blend(by_score, dense, sparse)  # the default method and constant
    assert BLEND_RRF_K == 1


def test_a_smaller_rank_constant_weighs_the_first_ranks_more(small_book_index):
    chunks, _ = small_book_index
    a, b, c = chunks[0], chunks[1], chunks[2]
    # a is first in one channel and absent from the other; b third and second. The
    # score half ties them all (b listed first): the rank half decides, and how much a
    # first rank counts against two lower ones is k's.
    dense = [_hit(a, 0.6, 0.6), _hit(c, 0.3, 0.3), _hit(b, 0.2, 0.2)]
    sparse = [_hit(c, 0.3, 6.0), _hit(b, 0.2, 3.0)]
    by_score = [_hit(b, 0.2, 0.5), _hit(a, 0.6, 0.5), _hit(c, 0.3, 0.5)]
    first = [hit.chunk.id for hit in hits_blend(by_score, dense, sparse, k=1)]
    agreed = [hit.chunk.id for hit in hits_blend(by_score, dense, sparse, k=60)]
    assert first.index(a.id) < first.index(b.id)  # 0.5 / 1 against 0.5 / 3 + 0.5 / 2
    assert agreed.index(b.id) < agreed.index(a.id)  # 30 / 60 against 30 / 62 + 30 / 61


def test_fusion_weights_move_the_order(small_book_index):
    chunks, _ = small_book_index
    a, b = chunks[0], chunks[1]
    dense = [_hit(a, 0.7, 0.7), _hit(b, 0.35, 0.35)]
    sparse = [_hit(b, 0.35, 9.0), _hit(a, 0.7, 3.0)]
    assert hits_fuse(dense, sparse, dense_weight=0.9)[0].chunk.id == a.id
    assert hits_fuse(dense, sparse, dense_weight=0.1)[0].chunk.id == b.id
    # One channel empty (a query of stopwords has no sparse terms): the other decides.
    assert [hit.chunk.id for hit in hits_fuse(dense, [])] == [a.id, b.id]


@pytest.mark.parametrize(
    ("cosine", "missing", "supported"),
    [
        (0.20, 0.0, False),  # below the floor nothing counts, whatever words it shares
        (0.35, 0.0, True),  # a fair match holding every term of the question
        (0.35, 0.5, False),  # a fair match, but half the question is not in the book
        (0.60, 0.5, True),  # a strong match is enough on its own
    ],
)
def test_book_supports_weighs_both_channels(cosine, missing, supported):
    terms = ("absent",) if missing else ()
    evidence = Evidence(cosine=cosine, missing=missing, missing_terms=terms)
    assert book_supports(evidence) is supported


def test_a_stray_name_outweighs_a_confident_cosine_but_not_a_near_restatement():
    # "What is the difference between a struct and a class in C#?" of the Rust book.
    evidence = Evidence(cosine=0.55, missing=0.0, stray_names=("c#",))
    assert not book_supports(evidence)
    assert book_supports(dataclasses.replace(evidence, stray_names=()))
    # "How is a Rust trait different from an interface in Java?": the passage nearly
    # restates it, Java is a comparison, and the rest of its words are in the book.
    comparison = Evidence(cosine=0.70, missing=0.2, stray_names=("java",))
    assert book_supports(comparison)
    assert not book_supports(dataclasses.replace(comparison, missing=0.6))


def test_book_supports_follows_the_settings(settings):
    evidence = Evidence(cosine=0.35, missing=0.5, missing_terms=("absent",))
    settings.RETRIEVAL_MISSING_TERMS = 0.5
    assert book_supports(evidence)
    settings.RETRIEVAL_CONFIDENT_SCORE = 0.3
    settings.RETRIEVAL_MISSING_TERMS = 0.0
    assert book_supports(evidence)
    assert not book_supports(evidence, floor=0.4)


def test_a_form_of_a_word_is_not_missing(small_book_index):
    chunks, _ = small_book_index
    hits = [_hit(chunk, 0.4, 0.4) for chunk in chunks]
    # "weigh" is in "weighted" (the Kalman section), "typescript" is not in "type".
    evidence = evidence_gather(
        query="What does the Kalman gain weigh in typescript?", fused=hits, dense=hits, sparse=[]
    )
    assert evidence.missing_terms == ("typescript",)


def test_evidence_names_the_terms_no_candidate_holds(small_book_index):
    chunks, _ = small_book_index
    hits = [_hit(chunk, 0.4, 0.4) for chunk in chunks[:3]]
    evidence = evidence_gather(
        query="Does LiDAR measure distance on a submarine?", fused=hits, dense=hits, sparse=[]
    )
    assert evidence.missing_terms == ("submarine",)
    assert evidence.missing == pytest.approx(1 / 4)  # lidar, measure, distance, submarine
    assert evidence.cosine == 0.4


@pytest.mark.parametrize(
    ("question", "names"),
    [
        ("What is a monad in Haskell?", {"haskell"}),
        ("How do virtual functions work in C++?", {"c++"}),
        ("How do I write a LINQ query in C#?", {"linq", "c#"}),
        ("TypeScript classes: how do constructors work?", {"typescript"}),
        ("Does the Kalman filter drift? Why does it?", {"kalman"}),  # "Why" is no name
        ("Thanks! Now, Kalman gains: Where do they come from?", {"kalman"}),  # sentences open
        ("how do i write a decorator in python?", set()),  # no capitals, no names
        ("What Is The Carnot Cycle?", set()),  # title case says nothing
        ("What is Kotlin?", {"kotlin"}),
    ],
)
def test_query_names_are_the_words_capitalised_where_english_does_not_need_it(question, names):
    assert query_names(question) == names


def test_a_name_only_a_passage_outside_the_best_hits_holds_strays(small_book_index):
    chunks, _ = small_book_index
    lidar, cost, imu, depth = (_hit(chunk, 0.5, 0.5) for chunk in chunks[:4])
    query = "Is LiDAR cheaper than a RealSense camera?"
    # RealSense is in the depth-camera passage only: below the best three it is a
    # passing mention, among them it is what the answer speaks of.
    beside = evidence_gather(query=query, fused=[lidar, cost, imu], dense=[], sparse=[cost, depth])
    assert beside.stray_names == ("realsense",)
    assert not book_supports(beside)
    among = evidence_gather(query=query, fused=[depth, lidar, cost], dense=[], sparse=[depth])
    assert among.stray_names == ()
    # A name many passages hold is one the book speaks of, wherever the best hits are.
    copies = [
        _hit(dataclasses.replace(depth.chunk, id=f"depth-{i}"), 0.3, 0.3)
        for i in range(STRAY_NAME_HITS + 1)
    ]
    often = evidence_gather(query=query, fused=[lidar, cost, imu], dense=copies, sparse=[])
    assert often.stray_names == ()


@pytest.mark.parametrize(
    ("question", "scopes"),
    [
        ("What is lazy evaluation in Haskell?", {"haskell"}),
        ("How do I use async/await with Promises in JavaScript?", {"javascript"}),
        ("What is a bean in Spring Boot?", {"spring", "boot"}),
        ("In Haskell, what is a monad?", {"haskell"}),
        ("What are Haskell's type classes for?", {"haskell"}),
        ("How do I put values in a list in Haskell?", {"haskell"}),  # the last "in"
        # Comparisons and passing mentions are not what the question is asked within.
        ("Coming from JavaScript, can I write if some_number?", set()),
        ("Is a Rust trait like an interface in Java code?", set()),
        ("What do I change in the BIOS before installing?", set()),
        ("how do i write a decorator in python?", set()),  # no capitals, no names
    ],
)
def test_query_scopes_are_the_names_a_question_is_asked_within(question, scopes):
    assert query_scopes(question) == scopes


def _passage(chunk, text: str, score: float = 0.45) -> Hit:
    """A hit on a copy of `chunk` whose text is `text` (a passage of some other book)."""
    return _hit(dataclasses.replace(chunk, id=text[:40], text=text, body=text), score, score)


def test_a_name_asked_within_that_the_book_mentions_in_passing_means_doubt(small_book_index):
    chunks, _ = small_book_index
    # The book compares its iterators with Haskell in one passage: the best hit holds
    # the name, so it does not stray, but a question asked *in* Haskell is not answered.
    lazy = _passage(chunks[0], "Iterators are lazy, as lists are in Haskell: nothing runs.")
    other = [_passage(chunks[1], "Closures capture values from their scope.", 0.3)]
    asked_in = evidence_gather(
        query="What is lazy evaluation in Haskell?", fused=[lazy], dense=other, sparse=[lazy]
    )
    assert asked_in.stray_names == ()
    assert asked_in.scope_names == ("haskell",)
    assert not book_supports(asked_in)
    # Compared with, the same name leaves the question to the book.
    compared = evidence_gather(
        query="Coming from Haskell, are iterators lazy?", fused=[lazy], dense=other, sparse=[lazy]
    )
    assert compared.scope_names == ()
    assert book_supports(compared)
    # A name many passages hold is the book's own subject ("... in Rust?").
    many = [
        _passage(chunks[1], f"Passage {i} on Haskell and its lazy lists.", 0.3)
        for i in range(STRAY_NAME_HITS + 1)
    ]
    own = evidence_gather(
        query="What is lazy evaluation in Haskell?", fused=[lazy], dense=many, sparse=[lazy]
    )
    assert own.scope_names == ()
    assert book_supports(own)


def test_a_capitalised_name_is_held_only_as_a_name_or_in_code(small_book_index):
    chunks, _ = small_book_index
    query = "How does a Go type satisfy an interface?"
    verbs = [
        _passage(chunks[1], f"Step {i}: let's go on and implement the trait for the type.")
        for i in range(STRAY_NAME_HITS + 1)
    ]
    # The book's "go" is a verb: the language is named nowhere, however many hold "go".
    evidence = evidence_gather(query=query, fused=verbs[:3], dense=verbs, sparse=[])
    assert evidence.stray_names == ("go",)
    assert not book_supports(evidence)
    # Written as a name, or in code (where names are lower case), it is held.
    for text in ("Go interfaces are satisfied implicitly.", "Run `go build` to compile it."):
        named = [_passage(chunks[0], text), *verbs[:2]]
        assert evidence_gather(query=query, fused=named, dense=verbs, sparse=[]).stray_names == ()


@pytest.mark.parametrize(
    ("question", "terms", "rare"),
    [
        # The model's vocabulary cuts these into pieces: technical terms.
        ("How do I allocate memory with calloc in C?", ["calloc"], ("calloc",)),
        ("How do Node.js streams handle backpressure?", ["backpressure"], ("backpressure",)),
        ("How does the event loop run microtasks?", ["microtask"], ("microtask",)),
        # Ordinary words: whole, with an ending, or with a prefix before a word.
        ("Is it fine to crash while sketching a program?", ["sketching"], ()),
        ("What does the cheapest tier cost?", ["cheapest"], ()),
        ("What clipping values does the agent use?", ["clipping"], ()),
        ("What happens if I mistype a number?", ["mistype"], ()),
        ("Why is redeclaring a variable allowed?", ["redeclaring"], ()),
        # An example the reader compares with is not what the question asks for.
        ("Is there an ignore file, like .gitignore, for pages?", ["gitignore"], ()),
        ("How do I parse arguments with argparse?", [], ()),  # only missing terms count
    ],
)
def test_query_rare_terms_are_the_missing_terms_that_are_no_ordinary_words(question, terms, rare):
    assert query_rare_terms(question, terms) == rare


def test_a_missing_technical_term_outweighs_a_confident_cosine(small_book_index):
    chunks, _ = small_book_index
    # The allocation passage is close (0.5) and holds four of the five terms; the one it
    # lacks is the very thing asked about.
    alloc = _passage(chunks[0], "To allocate memory for an array, ask the allocator.", 0.5)
    query = "How do I allocate array memory with calloc?"
    evidence = evidence_gather(query=query, fused=[alloc], dense=[alloc], sparse=[alloc])
    assert evidence.missing_terms == ("calloc",)
    assert evidence.rare_terms == ("calloc",)
    assert not book_supports(evidence)
    # A common word the book lacks is the reader's own wording: the cosine decides.
    worded = evidence_gather(
        query="How do I allocate array memory when sketching?",
        fused=[alloc],
        dense=[alloc],
        sparse=[],
    )
    assert worded.missing_terms == ("sketching",)
    assert worded.rare_terms == ()
    assert book_supports(worded)
    # Near a restatement (0.6 and above) the question's words decide, as for a stray name.
    close = dataclasses.replace(evidence, cosine=0.65, missing=0.2)
    assert book_supports(close)
    assert not book_supports(dataclasses.replace(close, missing=0.25))


@pytest.mark.parametrize(
    ("question", "lower"),
    [
        ("what does self mean in python classes", True),
        ("What does self mean in python classes? Tell me.", True),  # sentences open
        ("What does self mean in Python classes?", False),
        ("How do virtual functions work in C++?", True),  # "C++" is a name by its "++"
    ],
)
def test_query_in_lower_case(question, lower):
    assert query_in_lower_case(question) is lower


def test_a_name_of_the_book_written_in_lower_case_strays(small_book_index):
    chunks, _ = small_book_index
    methods = [
        _passage(chunks[1], f"Method {i} takes self as its first parameter.") for i in range(3)
    ]
    mention = _passage(chunks[2], "Unlike Python, the language has no classes.", 0.3)
    query = "what does the self parameter mean in python classes"
    evidence = evidence_gather(query=query, fused=methods, dense=[mention], sparse=methods)
    assert evidence.stray_names == ("python",)
    assert not book_supports(evidence)
    # A word the book writes in lower case too is no name; nor is one in a title-case
    # heading only ("Classes And Methods").
    for text in ("Unlike python scripts, it has no classes.", "Classes And Methods\nNone here."):
        plain = _passage(chunks[2], text, 0.3)
        query = "what are python classes" if "python" in text else "what are classes for"
        found = evidence_gather(query=query, fused=methods, dense=[plain], sparse=methods)
        assert found.stray_names == ()


def test_a_missing_term_with_the_specific_words_outside_the_best_hits_means_doubt(
    small_book_index,
):
    chunks, _ = small_book_index
    # "controller" is everywhere in the book; "floors" and "schedule" are in two passages
    # below the best hits; "elevator" in none: the best passages match the common word.
    common = [
        _passage(chunks[0], f"Controller {i} tracks the joint angles.", 0.37)
        for i in range(STRAY_NAME_HITS + 1)
    ]
    aside = [
        _passage(chunks[1], "Run the schedule every second.", 0.2),
        _passage(chunks[2], "The robot walks on flat floors.", 0.2),
    ]
    query = "How does an elevator controller schedule calls between floors?"
    evidence = evidence_gather(query=query, fused=common[:3], dense=common, sparse=aside)
    assert evidence.missing_terms == ("elevator",)  # "call" is a GENERIC_TERMS word
    assert evidence.unplaced_terms == ("floor", "schedule")
    assert not book_supports(evidence)
    # When a best hit holds one of the specific words, the passages are about the question.
    placed = evidence_gather(query=query, fused=[aside[1], *common[:2]], dense=common, sparse=aside)
    assert placed.unplaced_terms == ()
    # A missing verb form is the reader's wording, not the thing asked about.
    assert book_supports(dataclasses.replace(evidence, missing=1 / 6, missing_terms=("jumping",)))


def test_a_prefixed_form_of_a_held_word_is_not_missing(small_book_index):
    chunks, _ = small_book_index
    typed = _passage(chunks[0], "Each setting has a type: a number must parse as one.", 0.4)
    evidence = evidence_gather(
        query="What if I mistype a number in a setting?", fused=[typed], dense=[typed], sparse=[]
    )
    assert evidence.missing_terms == ()  # "mis" + "type", which the passage holds
    # Another spelling of a word the book holds is no missing term either.
    levels = _passage(chunks[0], "Change the optimization level of each profile.", 0.4)
    for query in ("How do I change the optimisation level?", "What colour is the level?"):
        found = evidence_gather(query=query, fused=[levels], dense=[levels], sparse=[])
        assert found.missing_terms == (() if "optimisation" in query else ("colour",))


def test_just_above_the_floor_one_missing_term_in_five_means_doubt():
    # "What traits make a good team leader?" of the Rust book: 0.25, "leader" missing.
    evidence = Evidence(cosine=0.25, missing=0.2, missing_terms=("leader",))
    assert not book_supports(evidence)
    assert book_supports(dataclasses.replace(evidence, missing=1 / 6))
    assert book_supports(dataclasses.replace(evidence, cosine=0.35))  # higher up, it is enough


async def test_a_question_about_what_the_book_never_names_is_not_supported(small_book):
    # The Kalman passage is close to the question, but says nothing of MATLAB: the
    # question is about a tool the book does not cover.
    retrieval = await book_search(query="How do I tune a Kalman filter in MATLAB?", k=3)
    assert retrieval.hits[0].chunk.heading == "Kalman Filters"
    assert retrieval.evidence.stray_names == ("matlab",)
    assert not retrieval.supported
    named = await book_search(query="How does an Intel RealSense camera compute depth?", k=3)
    assert named.evidence.stray_names == ()
    assert named.supported


# --- GET /api/search ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_search_endpoint_returns_results_as_api_md(client, small_book):
    response = client.get("/api/search", {"q": "What is the zero moment point?", "k": "2"})
    assert response.status_code == 200
    body = response.json()
    assert body["query"] == "What is the zero moment point?"
    assert body["supported"] is True
    assert 1 <= len(body["results"]) <= 2
    first = body["results"][0]
    assert set(first) == {"id", "score", "text", "title", "heading", "path", "url"}
    assert first["heading"] == "Zero Moment Point"
    assert first["path"] == "part-3/chapter-10-balance.mdx"
    assert first["url"].endswith("#zero-moment-point")
    assert first["text"].startswith("Chapter 10: Balance and Locomotion > Zero Moment Point")
    assert 0 < first["score"] <= 1


@pytest.mark.django_db
def test_search_endpoint_says_when_the_book_does_not_support_an_answer(client, small_book):
    body = client.get("/api/search", {"q": "How do I bake sourdough bread at home?"}).json()
    assert body["supported"] is False


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": ""},
        {"q": "   "},
        {"q": "lidar", "k": "0"},
        {"q": "lidar", "k": "51"},
        {"q": "lidar", "k": "many"},
    ],
)
def test_search_endpoint_rejects_bad_parameters(client, params):
    response = client.get("/api/search", params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


@pytest.mark.django_db
def test_search_endpoint_is_get_only(client):
    response = client.post("/api/search", {"q": "lidar"})
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.django_db
def test_search_endpoint_is_rate_limited(client, settings, small_book):
    settings.SEARCH_RATE_LIMIT = "2/m"
    statuses = [client.get("/api/search", {"q": "lidar"}).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    limited = client.get("/api/search", {"q": "lidar"})
    assert int(limited["Retry-After"]) >= 1
    assert limited.json()["error"]["code"] == "rate_limited"


def test_store_is_the_providers_one(small_book):
    # The fixture indexed into the store every view uses, not a private one.
    assert providers.get_store().count() == len(small_book)


# --- accents ---------------------------------------------------------------------------------


async def test_a_name_typed_without_its_accents_finds_the_passage_and_is_held(small_book, embedder):
    # Readers type "Zurich" and "Bezier" for the book's "Zürich" and "Bézier"; BM25, the
    # doubt's name checks and the answerer compare words folded (`sparse.fold`).
    text = (
        "Chapter 1: Introduction > History\n\nThe first electric arm of the Müller "
        "laboratory at ETH Zürich was designed by Jérôme Bézier in 1973; it moved on six "
        "joints driven by stepper motors."
    )
    chunk = dataclasses.replace(
        small_book[0],
        id="5f0c7a52-9a8e-4d4e-9f8a-1b2c3d4e5f60",
        text=text,
        body=text.split("\n\n", 1)[1],
        title="Chapter 1: Introduction",
        heading="History",
        path="part-1/chapter-1-introduction.mdx",
        position=0,
        content_hash="accents",
    )
    providers.get_store().upsert([chunk], await embedder.embed([text]))
    question = "Who designed the first electric arm at the Muller laboratory in Zurich?"
    retrieval = await book_search(query=question, k=3)
    assert retrieval.hits[0].chunk.id == chunk.id
    assert retrieval.supported
    assert not {"muller", "zurich"} & set(retrieval.evidence.missing_terms)
    source = Source(n=1, chunk=chunk, score=retrieval.hits[0].score, snippet="")
    first = extractive_answer(question=question, sources=[source]).split("[1]")[0]
    assert "Jérôme Bézier" in first
