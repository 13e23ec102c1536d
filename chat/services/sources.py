"""Packing retrieval's hits into the numbered sources of an answer (`sources` event, prompt)."""

from __future__ import annotations

from collections.abc import Sequence

from chat import prompts
from ragsite.rag.tokens import count_tokens
from ragsite.rag.types import Chunk, Hit, Source, sha256_text

SELECTION_ID = "selection"  # the chunk id of a highlighted passage (it is not in the store)
SNIPPET_CHARS = 240


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


def sources_pack(*, hits: Sequence[Hit], budget: int, selection: str | None = None) -> list[Source]:
    """Number the sources, most relevant first, while they fit the context token budget.

    The first source is always kept (a highlighted passage, or the best hit) so the
    model has something to work with even when one long chunk exceeds the budget.
    """
    return sources_pack_counted(hits=hits, budget=budget, selection=selection)[0]


def sources_pack_counted(
    *, hits: Sequence[Hit], budget: int, selection: str | None = None
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
    return packed, used


def _source_tokens(source: Source) -> int:
    """`count_tokens(prompts.format_source(source))`, without counting the body again for
    each position it takes: the tokenizer splits at the newline between the source's
    header and its body, so the two count apart (less the [CLS] and [SEP] counted twice),
    and the body's count is remembered per text."""
    header, _, body = prompts.format_source(source).partition("\n")
    return count_tokens(header) + count_tokens(body) - 2
