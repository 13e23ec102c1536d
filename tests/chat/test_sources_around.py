"""Sources that read on into the chunks around the one retrieval found (same page and
section), so an answer can quote the sentence beside it, still cited to its section."""

from __future__ import annotations

import re

import numpy as np
import pytest

from chat import prompts
from chat.services import sources_pack
from chat.services.sources import sources_pack_counted, sources_sentence_vectors
from ingestion.chunking import build_chunks
from ragsite.rag import edgestore, providers
from ragsite.rag.extractive import ExtractiveChatModel
from ragsite.rag.sentences import MemorySentenceVectors, sentence_key
from ragsite.rag.tokens import count_tokens
from ragsite.rag.types import AnswerRequest, Chunk, Hit, Source

PAGE = """# Ownership

## Borrowing

A reference lets a function use a value without taking ownership of it. The ampersand in \
`&s1` creates a reference that refers to the value of `s1`. Because the reference does not \
own the value, the value is not dropped when the reference stops being used.

The action of creating a reference is called borrowing. As in real life, when a person owns \
something you can borrow it from them, and when you are done you give it back. You do not \
own it while you borrow it.

Mutable references have one big restriction: if you have a mutable reference to a value, \
you can have no other references to that value. This restriction prevents data races at \
compile time. A data race happens when two pointers access the same data at the same time.

## Lifetimes

Every reference in Rust has a lifetime, which is the scope for which that reference is \
valid. Most of the time lifetimes are implicit and inferred, just as most of the time types \
are inferred.
"""
RESTRICTION = "if you have a mutable reference to a value, you can have no other references"
LIFETIME = "Every reference in Rust has a lifetime"


@pytest.fixture
def page(embedder):
    """The page chunked by the real chunker (small chunks, with overlap), indexed in this
    test's store: three chunks of "Borrowing", then one of "Lifetimes"."""
    _, chunks = build_chunks(
        path="ownership.md",
        text=PAGE,
        site_url="https://book.example",
        docs_prefix="",
        max_tokens=80,
        overlap_tokens=24,
    )
    assert [c.heading for c in chunks] == ["Borrowing"] * 3 + ["Lifetimes"]
    store = providers.get_store()
    vectors = embedder.embed_sync([c.text for c in chunks])
    store.ensure_collection(dimension=len(vectors[0]))
    store.upsert(chunks, vectors)
    return chunks


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())) if s]


def test_a_source_reads_on_into_its_sections_chunks_but_not_the_next_section(page):
    middle = page[1]
    [source] = sources_pack(
        hits=[Hit(chunk=middle, score=0.6)], budget=3000, store=providers.get_store()
    )
    # What retrieval found is what is cited: its chunk, section URL, heading and snippet.
    assert source.chunk == middle
    assert source.as_dict()["url"] == "https://book.example/ownership#borrowing"
    assert source.snippet.startswith("Because the reference does not own the value")
    # Its text reads on into the chunks before and after it, of its own section only.
    assert "A reference lets a function use a value" in source.before
    assert RESTRICTION in source.after
    assert LIFETIME not in source.body
    assert source.neighbours == (page[0].content_hash, page[2].content_hash)
    # The chunker's overlap is not repeated: every sentence of the section appears once.
    sentences = _sentences(source.body)
    assert (
        len(sentences)
        == len(set(sentences))
        == len(_sentences(PAGE.split("## Borrowing")[1].split("## Lifetimes")[0]))
    )
    # The prompt shows the whole text under the source's one number.
    assert RESTRICTION in prompts.format_source(source)


def test_the_text_around_fits_the_budget_and_is_counted(page):
    hit = Hit(chunk=page[1], score=0.6)
    bare, bare_tokens = sources_pack_counted(hits=[hit], budget=3000)
    assert (bare[0].before, bare[0].after) == ("", "")  # without a store: the chunk alone
    widened, tokens = sources_pack_counted(hits=[hit], budget=3000, store=providers.get_store())
    assert tokens == count_tokens(prompts.format_source(widened[0])) > bare_tokens
    # A budget with room for the chunk alone adds nothing.
    tight, tight_tokens = sources_pack_counted(
        hits=[hit], budget=bare_tokens + 5, store=providers.get_store()
    )
    assert (tight[0].before, tight[0].after, tight_tokens) == ("", "", bare_tokens)


def test_each_source_stays_in_its_own_section(page):
    hits = [Hit(chunk=page[3], score=0.7), Hit(chunk=page[2], score=0.6)]
    lifetimes, borrowing = sources_pack(hits=hits, budget=3000, store=providers.get_store())
    # "Lifetimes" is one chunk: the "Borrowing" chunk before it is another section.
    assert (lifetimes.before, lifetimes.after) == ("", "")
    assert "The action of creating a reference is called borrowing" in borrowing.before
    assert LIFETIME not in borrowing.body


async def test_the_answer_quotes_the_sentence_beside_the_chunk_and_cites_its_source(page):
    # Retrieval found the chunk before the one that states the restriction.
    question = "What restriction do mutable references have?"
    sources = sources_pack(
        hits=[Hit(chunk=page[1], score=0.6), Hit(chunk=page[3], score=0.4)],
        budget=3000,
        store=providers.get_store(),
    )
    assert RESTRICTION not in sources[0].chunk.body
    answer = await ExtractiveChatModel().answer(AnswerRequest(question=question, sources=sources))
    assert RESTRICTION in answer
    lead = next(p for p in answer.split("\n\n") if RESTRICTION in p)
    assert "[1]" in lead
    assert set(re.findall(r"\[(\d+)\]", answer)) <= {"1", "2"}  # no phantom citation


def test_sentence_vectors_of_the_text_around_are_the_sources_too(page, embedder):
    sources = sources_pack(
        hits=[Hit(chunk=page[1], score=0.6)], budget=3000, store=providers.get_store()
    )
    memory = MemorySentenceVectors()
    own_key, next_key = sentence_key("own sentence"), sentence_key(RESTRICTION)
    memory.put(
        embedder=embedder,
        content_hash=page[1].content_hash,
        vectors={own_key: np.ones(3, dtype=np.float32)},
    )
    memory.put(
        embedder=embedder,
        content_hash=page[2].content_hash,
        vectors={next_key: np.zeros(3, dtype=np.float32), own_key: np.zeros(3, dtype=np.float32)},
    )
    found = sources_sentence_vectors(sources=sources, vectors=memory, embedder=embedder)
    merged = found[page[1].content_hash]
    assert set(merged) == {own_key, next_key}
    assert merged[own_key].tolist() == [1.0, 1.0, 1.0]  # its own chunk's vector wins


def test_without_the_store_the_sources_are_what_retrieval_found(page, caplog):
    store = providers.get_store()
    assert isinstance(store, edgestore.EdgeStore)  # the default engine
    edgestore.close_engine()  # the store fails from now on (it does not reopen)
    [source] = sources_pack(hits=[Hit(chunk=page[1], score=0.6)], budget=3000, store=store)
    assert source.chunk == page[1]
    assert (source.before, source.after, source.body) == ("", "", page[1].body)
    assert "could not read the chunks around the sources" in caplog.text


def test_a_side_read_from_a_chunk_retrieval_found_is_marked_found(page):
    hit = Hit(chunk=page[1], score=0.6)
    store = providers.get_store()
    [read] = sources_pack(hits=[hit], budget=3000, store=store)
    assert read.found_around == ()
    # Retrieval returned the chunk after it too (the section's second hit, which
    # hits_distinct_sections folds into this source).
    [found] = sources_pack(hits=[hit], budget=3000, store=store, found=[page[1], page[2]])
    assert (found.before, found.after) == (read.before, read.after)
    assert found.found_around == ((found.after, 1),)  # read from retrieval's second hit


RUN_ONE = "We can pass the name of any test function to `cargo test` to run only that test:"
ONE_TEST = """\
The test output lets us know we had more tests that did not run. There is a way to \
run several tests too."""
BESIDE = f"""\
{RUN_ONE}

```console
$ cargo test one_hundred
```

Only the test with the name `one_hundred` ran; the others did not match that name."""
REST_OF_LISTING = """\
```console
$ cargo test one_hundred --exact
```"""


def _tail_source(after: str, *, found_after: bool) -> Source:
    """Source 1: a chunk of a "Running Single Tests" section, with `after` read on into."""
    chunk = Chunk(
        id="tail",
        text=f"Running Single Tests\n\n{ONE_TEST}",
        body=ONE_TEST,
        title="Controlling How Tests Are Run",
        heading="Running Single Tests",
        path="ch11-02-running-tests.md",
        url=None,
        position=13,
        content_hash="hash-tail",
    )
    found = ((after, 1),) if found_after else ()  # retrieval's second hit
    return Source(n=1, chunk=chunk, score=0.64, snippet="", after=after, found_around=found)


async def test_text_retrieval_found_beside_the_chunk_is_quoted_as_its_own():
    question = "How do I run only one test?"
    model = ExtractiveChatModel()

    async def answer(source: Source) -> str:
        return await model.answer(AnswerRequest(question=question, sources=[source]))

    # Only read around the chunk: its sentences count less.
    read = await answer(_tail_source(BESIDE, found_after=False))
    assert RUN_ONE in read
    assert not read.startswith(RUN_ONE)  # the chunk's own sentences lead
    # Found by retrieval too: the sentence that says how, with its one-line block
    # quoted in it, opens the answer.
    found = await answer(_tail_source(BESIDE, found_after=True))
    assert found.startswith(f"{RUN_ONE} `cargo test one_hundred` [1].")
    # A block of found text with no sentence introducing it (the rest of a listing the
    # chunk shows) is still left out.
    rest = await answer(_tail_source(REST_OF_LISTING, found_after=True))
    assert "--exact" not in rest


async def test_the_chat_tells_the_packing_which_chunks_retrieval_found(small_book, monkeypatch):
    from chat.services import answering, book_search
    from ragsite.rag.config import get_config

    question = "How does LiDAR measure distance?"
    seen: dict = {}
    real = answering.sources_pack_counted

    def recording(**kwargs):
        seen.update(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(answering, "sources_pack_counted", recording)
    result = await answering.answer_collect(message=question)
    assert result["sources"]
    retrieval = await book_search(query=question, k=get_config().retrieval_k)
    assert retrieval.hits
    assert list(seen["found"]) == [hit.chunk for hit in retrieval.hits]


def test_a_source_reads_on_as_far_as_its_sections_other_hits(page):
    store = providers.get_store()
    first = Hit(chunk=page[0], score=0.6)
    # Without them: the next chunk only.
    [alone] = sources_pack(hits=[first], budget=3000, store=store)
    assert alone.neighbours == (page[1].content_hash,)
    assert RESTRICTION not in alone.body
    # Retrieval also returned the section's third chunk: the source reads on to it,
    # through the chunk between, and only that one's text counts as found.
    [source] = sources_pack(hits=[first], budget=3000, store=store, found=[page[0], page[2]])
    assert source.neighbours == (page[1].content_hash, page[2].content_hash)
    assert RESTRICTION in source.after
    assert LIFETIME not in source.body  # still its own section only
    [(found_part, rank)] = source.found_around
    assert rank == 1
    assert RESTRICTION in found_part
    assert "The action of creating a reference is called borrowing" not in found_part
    sentences = _sentences(source.body)
    assert len(sentences) == len(set(sentences))  # the overlap is not repeated
    # No budget for it: the source stays as it was.
    bare, bare_tokens = sources_pack_counted(hits=[first], budget=3000)
    [tight] = sources_pack(hits=[first], budget=bare_tokens + 5, store=store, found=[page[2]])
    assert (tight.after, tight.found_around) == ("", ())
