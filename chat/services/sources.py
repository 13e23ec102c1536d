"""Packing retrieval's hits into the numbered sources of an answer (`sources` event, prompt)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from chat import prompts
from ragsite.rag.exceptions import VectorStoreError
from ragsite.rag.sentences import SentenceVectors, vectors_per_chunk
from ragsite.rag.tokens import count_tokens
from ragsite.rag.types import Chunk, Embedder, Hit, Source, VectorStore, sha256_text

logger = logging.getLogger(__name__)

SELECTION_ID = "selection"  # the chunk id of a highlighted passage (it is not in the store)
SNIPPET_CHARS = 240
# The chunks a source reads on into once it holds its section's other hits (if any), in
# this order: +1 the next chunk on its page after what it holds so far, -1 the one
# before; every source's first step before any source's second.
NEIGHBOUR_STEPS: tuple[int, ...] = (1, -1)


def _snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[:limit].rsplit(" ", 1)[0].rstrip(",;:.") + "…"


def selection_source(*, selection: str, hits: Sequence[Hit]) -> Source:
    """Source 1 for highlighted text: "Your selection", on the page it came from if known."""
    needle = " ".join(selection.split())[:200].lower()
    path = next(
        (
            hit.chunk.path
            for hit in hits
            if needle and needle in " ".join(hit.chunk.body.split()).lower()
        ),
        "",
    )
    chunk = Chunk(
        id=SELECTION_ID,
        text=selection,
        body=selection,
        title=prompts.SELECTION_TITLE,
        heading="",
        path=path,
        url=None,
        position=0,
        content_hash=sha256_text(selection),
    )
    return Source(n=1, chunk=chunk, score=1.0, snippet=_snippet(selection))


def sources_pack(
    *,
    hits: Sequence[Hit],
    budget: int,
    selection: str | None = None,
    store: VectorStore | None = None,
    found: Sequence[Chunk] = (),
) -> list[Source]:
    """Number the sources, most relevant first, while they fit the context token budget.

    The first source is always kept (a highlighted passage, or the best hit) so the
    model has something to work with even when one long chunk exceeds the budget.
    With `store`, the budget left then lets each source read on into the chunks around
    its own in the same section (`sources_widen`); `found` are the chunks retrieval
    returned (`Retrieval.hits`): a source reads on as far as its section's others.
    """
    return sources_pack_counted(
        hits=hits, budget=budget, selection=selection, store=store, found=found
    )[0]


def sources_pack_counted(
    *,
    hits: Sequence[Hit],
    budget: int,
    selection: str | None = None,
    store: VectorStore | None = None,
    found: Sequence[Chunk] = (),
) -> tuple[list[Source], int]:
    """`sources_pack`, plus the prompt tokens of the packed sources (each counted once)."""
    candidates: list[Source] = []
    if selection:
        candidates.append(selection_source(selection=selection, hits=hits))
    for hit in hits:
        candidates.append(
            Source(
                n=0,
                chunk=hit.chunk,
                score=hit.score,
                snippet=_snippet(hit.chunk.body or hit.chunk.text),
            )
        )
    packed: list[Source] = []
    used = 0
    for candidate in candidates:
        numbered = Source(
            n=len(packed) + 1,
            chunk=candidate.chunk,
            score=candidate.score,
            snippet=candidate.snippet,
        )
        cost = _source_tokens(numbered)
        if packed and used + cost > budget:
            continue  # a shorter, less relevant one may still fit
        packed.append(numbered)
        used += cost
    if store is not None:
        return sources_widen(sources=packed, used=used, budget=budget, store=store, found=found)
    return packed, used


def sources_widen(
    *,
    sources: Sequence[Source],
    used: int,
    budget: int,
    store: VectorStore,
    found: Sequence[Chunk] = (),
) -> tuple[list[Source], int]:
    """Let each source read on into the chunks around its own, while the budget allows.

    Retrieval often finds the right section but the chunk beside the one that states
    the answer. A source's body takes in its page's chunks around its own (one store
    call for all), only those of its own section (same path and heading), so whatever
    is quoted from it is still cited to the section it is in; the chunker's overlap is
    not repeated. First, every source reads on as far as the other chunks of its
    section that retrieval returned (`found`: `Retrieval.hits`, of which the sources
    keep one per section), then one chunk further each way (NEIGHBOUR_STEPS). Best
    sources first; `used` and the result count prompt tokens. The parts read from a
    found chunk are `Source.found_around`, with its rank: the answerer scores them as
    found, not only read around (`ragsite/rag/scoring.py`, `_gather`).
    """
    mates = {
        source.n: [
            chunk.position
            for chunk in found
            if (chunk.path, chunk.heading) == (source.chunk.path, source.chunk.heading)
            and chunk.id != source.chunk.id
        ]
        for source in sources
    }
    places = [
        (source.chunk.path, position)
        for source in sources
        if source.chunk.id != SELECTION_ID
        for position in _reachable(source.chunk.position, mates[source.n])
    ]
    if not places:
        return list(sources), used
    try:
        around = {(c.path, c.position): c for c in store.chunks_at(places)}
    except VectorStoreError:  # the sources alone still answer
        logger.warning("could not read the chunks around the sources", exc_info=True)
        return list(sources), used
    found_rank = {chunk.id: rank for rank, chunk in enumerate(found)}
    taken = {source.chunk.id for source in sources}
    # Per source: the parts of its text in page order (its own chunk's body among them)
    # and which of them is its own.
    parts = {source.n: [_own_text(source.chunk)] for source in sources}
    own_at = dict.fromkeys(parts, 0)
    reach = {source.n: [source.chunk.position, source.chunk.position] for source in sources}
    added: dict[int, list[Chunk]] = {source.n: [] for source in sources}
    found_parts: dict[int, list[tuple[str, int]]] = {source.n: [] for source in sources}

    def read_on(source: Source, step: int) -> bool:
        """Take the source's next chunk that way into its text; False when it cannot."""
        own, span = source.chunk, reach[source.n]
        neighbour = around.get((own.path, span[step > 0] + step))
        if (
            neighbour is None
            or neighbour.heading != own.heading
            or neighbour.id in taken
            or not neighbour.body.strip()
        ):
            return False
        body = parts[source.n]
        part = _after(body[-1], neighbour.body) if step > 0 else _before(neighbour.body, body[0])
        widened = [*body, part] if step > 0 else [part, *body]
        cost = _body_tokens(widened) - _body_tokens(body)
        nonlocal used
        if used + cost > budget:
            return False
        parts[source.n] = widened
        own_at[source.n] += step < 0
        span[step > 0] += step
        added[source.n].append(neighbour)
        if neighbour.id in found_rank:
            found_parts[source.n].append((part, found_rank[neighbour.id]))
        taken.add(neighbour.id)
        used += cost
        return True

    live = [source for source in sources if source.chunk.id != SELECTION_ID]
    for source in live:  # first as far as the section's other hits
        mine, span = mates[source.n], reach[source.n]
        while mine and span[1] < max(mine) and read_on(source, 1):
            pass
        while mine and span[0] > min(mine) and read_on(source, -1):
            pass
    for step in NEIGHBOUR_STEPS:
        for source in live:
            read_on(source, step)
    return [
        _widened(source, parts[source.n], own_at[source.n], added[source.n], found_parts[source.n])
        if added[source.n]
        else source
        for source in sources
    ], used


def _reachable(position: int, mates: Sequence[int]) -> list[int]:
    """The positions a source at `position` may read on into: as far as its section's
    other hits (`mates`), then NEIGHBOUR_STEPS further."""
    low, high = min([position, *mates]), max([position, *mates])
    after, before = NEIGHBOUR_STEPS.count(1), NEIGHBOUR_STEPS.count(-1)
    return [p for p in range(low - before, high + after + 1) if p != position]


def _before(first: str, second: str) -> str:
    """`first` without its last sentences when `second` starts with them (the overlap)."""
    lead, sep, _ = second.strip().partition("\n\n")
    first = first.strip()
    if sep and lead and first.endswith(lead):
        return first[: -len(lead)].rstrip()
    return first


def _after(first: str, second: str) -> str:
    """`second` without its first paragraph when that repeats the end of `first` (the
    chunker's overlap: a chunk starts with the last sentences of the one before)."""
    lead, sep, rest = second.strip().partition("\n\n")
    if sep and lead and first.rstrip().endswith(lead):
        return rest
    return second.strip()


def _body_tokens(parts: Sequence[str]) -> int:
    """`count_tokens` of the parts joined by blank lines (the tokenizer splits there)."""
    return sum(count_tokens(part) - 2 for part in parts) + 2


def _widened(
    source: Source,
    parts: Sequence[str],
    own_at: int,
    added: Sequence[Chunk],
    found_parts: Sequence[tuple[str, int]],
) -> Source:
    """The source with the text around its chunk (its own part, `own_at`, is the chunk's);
    `found_parts`: those of the parts around it read from one of retrieval's hits, with
    that hit's rank."""
    return dataclasses.replace(
        source,
        before="\n\n".join(parts[:own_at]),
        after="\n\n".join(parts[own_at + 1 :]),
        neighbours=tuple(c.content_hash for c in sorted(added, key=lambda c: c.position)),
        found_around=tuple(found_parts),
    )


def sources_sentence_vectors(
    *, sources: Sequence[Source], vectors: SentenceVectors, embedder: Embedder
) -> dict[str, Mapping[bytes, Any]]:
    """Per source (its chunk's content hash), the stored sentence vectors of its text:
    its own chunk's, and those of the chunks around it that it reads on into."""
    hashes = [h for s in sources for h in (s.chunk.content_hash, *s.neighbours)]
    found: dict[str, Mapping[bytes, Any]] = dict(
        vectors_per_chunk(vectors, embedder=embedder, hashes=hashes)
    )
    for source in sources:
        if source.neighbours:
            merged: dict[bytes, Any] = {}
            for content_hash in (*source.neighbours, source.chunk.content_hash):
                merged.update(found.get(content_hash, {}))  # its own chunk's vectors last: kept
            if merged:
                found[source.chunk.content_hash] = merged
    return found


def _own_text(chunk: Chunk) -> str:
    """A chunk's own part of a source's text, as it is counted and quoted."""
    return (chunk.body or chunk.text).strip()


def sources_memos_warm(chunks: Iterable[Chunk]) -> None:
    """Count these chunks' tokens ahead of time, as packing sources counts them: each
    chunk's own text, and its header as a source (`_header_tokens`).

    Counting is the tokenizer's work (~0.3 ms for a chunk, ~0.08 ms for a header; a fresh
    question packs ~10 texts) and its memo keeps a number per text: cheap to hold, dear
    to redo.
    """
    for chunk in chunks:
        count_tokens(_own_text(chunk))
        _header_tokens(1, prompts.source_header(Source(n=1, chunk=chunk, score=0.0, snippet="")))


def _source_tokens(source: Source) -> int:
    """`count_tokens(prompts.format_source(source))`, without counting the body again for
    each position it takes: the tokenizer splits at the newline between the source's
    header and its body, so the two count apart (less the [CLS] and [SEP] counted twice),
    and the body's count is remembered per text."""
    header = prompts.source_header(source)
    if "\n" in header:  # a label with a line break in it: the first line ends there
        first, _, rest = prompts.format_source(source).partition("\n")
        return count_tokens(first) + count_tokens(rest) - 2
    return _header_tokens(source.n, header) + count_tokens(source.body.strip()) - 2


def _header_tokens(n: int, header: str) -> int:
    """`count_tokens(header)` for source `n`'s header, from source 1's: the tokenizer
    splits "[12]" into "[", "12" and "]" (punctuation is a word of its own), so the
    number counts apart from the rest and one count per chunk serves every position it
    is packed at (and can be warmed)."""
    first = "[1]" + header.removeprefix(f"[{n}]")
    return count_tokens(first) - count_tokens("1") + count_tokens(str(n))
