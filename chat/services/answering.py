"""Answering a reader's question: the chat stream of API.md as (event, data) pairs.

Order: `meta` as soon as the session is known (before any embedding), `sources` as
soon as retrieval finishes (before the model is called), then `token`s, then `done`
or one `error`. The message row is created first and updated at the end, so a reader
who leaves mid-answer leaves a `partial` message behind, and feedback can name it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async

from chat import prompts
from chat.models import Message
from chat.prompts import Turn
from chat.selectors import conversation_history
from ragsite.rag import providers
from ragsite.rag.config import get_config
from ragsite.rag.exceptions import LLM_UNAVAILABLE_MESSAGE, LLMError, RagError
from ragsite.rag.llm import EXTRACTIVE_NOTICE
from ragsite.rag.tokens import count_tokens
from ragsite.rag.types import (
    AnswerRequest,
    ChatModel,
    Chunk,
    Embedder,
    Hit,
    Source,
    VectorStore,
    sha256_text,
)

from .citations import CitationFilter
from .conversations import conversation_resolve, message_finish, message_start
from .retrieval import Retrieval, book_search
from .rewriting import query_rewrite

logger = logging.getLogger(__name__)

ANSWER_FAILED_MESSAGE = "The answer could not be completed. Please try again."
INTERNAL_ERROR_MESSAGE = "Something went wrong on our side while answering."
CANCELLED_ERROR = "The reader closed the connection before the answer was complete."

SELECTION_ID = "selection"  # the chunk id of a highlighted passage (it is not in the store)
SNIPPET_CHARS = 240
SELECTION_QUERY_CHARS = 1000  # how much of a highlighted passage joins the search query
MAX_FOLLOW_UPS = 3
FOLLOW_UP_MAX_CHARS = 120
# Headings that name a part of every chapter rather than a topic of the book.
GENERIC_HEADINGS = frozenset(
    {
        "summary",
        "introduction",
        "overview",
        "conclusion",
        "conclusions",
        "further reading",
        "references",
        "exercises",
        "knowledge check",
        "what you'll learn",
        "what you will learn",
        "next steps",
        "best practices",
        "key takeaways",
        "review questions",
        "prerequisites",
        "conceptual questions",
        "practical application",
        "critical thinking",
    }
)


@dataclass(frozen=True, slots=True)
class Collaborators:
    """The components one answer uses (resolved from the providers when not given)."""

    embedder: Embedder
    store: VectorStore
    llm: ChatModel
    fallback_llm: ChatModel


def _snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[:limit].rsplit(" ", 1)[0].rstrip(",;:.") + "…"


def _mode_of(model: ChatModel) -> str:
    return Message.Mode.EXTRACTIVE if model.provider == "extractive" else Message.Mode.LLM


def _error_class(code: str) -> type[RagError]:
    """Our exception class with this error code (RagError itself for unknown codes)."""
    stack: list[type[RagError]] = [RagError]
    while stack:
        cls = stack.pop()
        if cls.code == code:
            return cls
        stack.extend(cls.__subclasses__())
    return RagError


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
    return _sources_pack_counted(hits=hits, budget=budget, selection=selection)[0]


def _sources_pack_counted(
    *, hits: Sequence[Hit], budget: int, selection: str | None = None
) -> tuple[list[Source], int]:
    """`sources_pack`, plus the prompt tokens of the packed sources (counted once)."""
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
        cost = count_tokens(prompts.format_source(numbered))
        if packed and used + cost > budget:
            continue  # a shorter, less relevant one may still fit
        packed.append(numbered)
        used += cost
    return packed, used


def _topic(source: Source) -> str:
    """The most specific part of a source's heading path, or its page title."""
    heading = source.chunk.heading.split(" > ")[-1].strip() if source.chunk.heading else ""
    heading = re.sub(r"^(chapter|part|section)\s+\d+[:.]?\s*", "", heading, flags=re.IGNORECASE)
    return heading or source.chunk.title


def follow_ups_from_headings(*, sources: Sequence[Source], question: str) -> list[str]:
    """Suggest "What does the book say about <heading>?" for distinct source sections.

    Topics the question already names come last: they are the least new to the reader.
    """
    asked = question.lower()
    fresh: list[str] = []
    named: list[str] = []
    seen: set[str] = set()
    for source in sources:
        if source.chunk.id == SELECTION_ID:
            continue
        topic = _topic(source)
        key = topic.lower().strip()
        if not key or key in seen or key in GENERIC_HEADINGS:
            continue
        seen.add(key)
        (named if key in asked else fresh).append(prompts.FOLLOW_UP_TEMPLATE.format(topic=topic))
    return (fresh + named)[:MAX_FOLLOW_UPS]


def _parse_follow_ups(text: str) -> list[str]:
    questions: list[str] = []
    for line in text.splitlines():
        line = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", line).strip().strip("\"'")
        if line.endswith("?") and 3 < len(line) <= FOLLOW_UP_MAX_CHARS and line not in questions:
            questions.append(line)
    return questions[:MAX_FOLLOW_UPS]


async def follow_ups_suggest(
    *, question: str, answer: str, sources: Sequence[Source], llm: ChatModel
) -> list[str]:
    """Return 2-3 short questions the sources can answer (LLM, else from headings)."""
    fallback = follow_ups_from_headings(sources=sources, question=question)
    if llm.provider == "extractive" or not sources:
        return fallback
    try:
        text = await llm.complete(
            prompts.follow_up_messages(question=question, answer=answer, sources=sources),
            max_tokens=120,
        )
    except LLMError as exc:
        logger.info("follow-up suggestions by the LLM failed, using headings: %s", exc)
        return fallback
    suggested = _parse_follow_ups(text)
    return suggested if len(suggested) >= 2 else fallback


def uncertain_answer(*, closest: Sequence[Source]) -> str:
    """The short answer when the book offers no support: say so, name the nearest sections."""
    if not closest:
        return f"{prompts.UNCERTAIN_ANSWER} {prompts.UNCERTAIN_NOTHING_CLOSE}"
    lines = [f"{prompts.UNCERTAIN_ANSWER} {prompts.UNCERTAIN_CLOSEST}", ""]
    lines += [f"- {prompts.source_label(source)}" for source in closest]
    return "\n".join(lines)


def _pieces(text: str) -> list[str]:
    return re.findall(r"\s*\S+\s*$|\s*\S+", text) or [text]


async def _fallback_pieces(model: ChatModel, request: AnswerRequest) -> AsyncIterator[str]:
    """The extractive answer, introduced by a notice that the LLM is unavailable."""
    text = "".join([piece async for piece in model.stream(request)])
    if text.startswith(EXTRACTIVE_NOTICE):
        text = text[len(EXTRACTIVE_NOTICE) :].lstrip()
    for piece in _pieces(prompts.LLM_FALLBACK_NOTICE + text):
        yield piece


def _resolve(
    embedder: Embedder | None,
    store: VectorStore | None,
    llm: ChatModel | None,
    fallback_llm: ChatModel | None,
) -> Collaborators:
    return Collaborators(
        embedder=embedder or providers.get_embedder(),
        store=store or providers.get_store(),
        llm=llm or providers.get_chat_model(),
        fallback_llm=fallback_llm or providers.get_extractive_model(),
    )


async def answer_stream(
    *,
    message: str,
    session_id: str | None = None,
    selection: str | None = None,
    embedder: Embedder | None = None,
    store: VectorStore | None = None,
    llm: ChatModel | None = None,
    fallback_llm: ChatModel | None = None,
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Answer `message` from the book, yielding the events of API.md's chat stream.

    Args:
        message: the reader's question (validated: 1..2000 characters).
        session_id: from an earlier `meta`; unknown or expired ones start a new session.
        selection: text the reader highlighted; it becomes source 1.
        embedder, store, llm, fallback_llm: collaborators; default to the providers
            (`fallback_llm` answers when `llm` fails before its first token).

    Yields:
        (event, data) pairs: meta, sources, token*, then done or error.

    The message is stored when the stream ends: complete, error, or partial when the
    consumer stops early (the reader closed the tab). CancelledError is re-raised.
    """
    config = get_config()
    started = time.perf_counter()
    try:
        conversation = await sync_to_async(conversation_resolve)(session_id=session_id)
        row = await sync_to_async(message_start)(
            conversation=conversation, question=message, selection=selection or ""
        )
    except Exception:
        # The database is unusable: there is no message to report on, but the stream
        # (whose headers are already sent) still ends with one readable event.
        logger.exception("could not start a conversation")
        yield "error", {"code": "internal_error", "message": INTERNAL_ERROR_MESSAGE}
        return
    yield "meta", {"session_id": str(conversation.session_id), "message_id": str(row.message_id)}

    emitted: list[str] = []
    outcome: dict[str, Any] = {"status": Message.Status.PARTIAL}
    ttft_ms: int | None = None
    tokens: AsyncIterator[str] | None = None
    try:
        parts = await asyncio.to_thread(_resolve, embedder, store, llm, fallback_llm)
        model = parts.llm
        outcome["mode"] = _mode_of(model)
        history: list[Turn] = await sync_to_async(conversation_history)(
            conversation=conversation, turns=config.chat_history_turns, exclude_id=row.pk
        )
        query = await query_rewrite(message=message, history=history, llm=model)
        outcome["rewritten_query"] = query
        search_query = f"{query}\n{selection[:SELECTION_QUERY_CHARS]}" if selection else query
        retrieval: Retrieval = await book_search(
            query=search_query, k=config.retrieval_k, embedder=parts.embedder, store=parts.store
        )
        uncertain = not retrieval.supported and not selection
        # Token counting is CPU work: keep it off the event loop, and count each source once.
        sources, context_tokens = await asyncio.to_thread(
            functools.partial(
                _sources_pack_counted,
                hits=retrieval.closest if uncertain else retrieval.hits,
                budget=config.context_token_budget,
                selection=selection,
            )
        )
        source_dicts = [source.as_dict() for source in sources]
        outcome["sources"] = source_dicts
        yield "sources", {"sources": source_dicts}

        mode = _mode_of(model)
        request = AnswerRequest(
            question=message,
            sources=sources,
            messages=prompts.answer_messages(question=message, sources=sources, history=history),
        )
        citation_filter = CitationFilter(source.n for source in sources)
        if uncertain:
            tokens = _as_async(_pieces(uncertain_answer(closest=sources)))
        else:
            tokens = aiter(model.stream(request))
        # The first piece decides: a model that fails (or stays silent) before it is
        # replaced by the extractive answer; after it, a failure is an error event.
        try:
            piece = await anext(tokens, None)
            if piece is None and not uncertain:
                raise LLMError(LLM_UNAVAILABLE_MESSAGE, details={"reason": "empty answer"})
        except LLMError as exc:
            logger.warning("LLM failed before its first token, answering extractively: %s", exc)
            await _close(tokens)
            mode = Message.Mode.EXTRACTIVE
            tokens = aiter(_fallback_pieces(parts.fallback_llm, request))
            piece = await anext(tokens, None)
        outcome["mode"] = mode
        while piece is not None:
            shown = citation_filter.feed(piece)
            if shown:
                if ttft_ms is None:
                    ttft_ms = _elapsed_ms(started)
                emitted.append(shown)
                yield "token", {"text": shown}
            piece = await anext(tokens, None)
        tail = citation_filter.flush()
        if tail:
            emitted.append(tail)
            yield "token", {"text": tail}

        answer = "".join(emitted)
        citations = citation_filter.citations
        if not uncertain and not citations and prompts.NOT_COVERED_PHRASE in answer.lower():
            uncertain = True  # the model found the sources beside the point
        follow_ups = await follow_ups_suggest(
            question=message,
            answer=answer,
            sources=sources,
            llm=parts.fallback_llm if uncertain or mode != Message.Mode.LLM else model,
        )
        usage = {**request.usage, "context_tokens": context_tokens}
        outcome.update(
            status=Message.Status.COMPLETE,
            citations=citations,
            uncertain=uncertain,
            follow_ups=follow_ups,
            usage=usage,
        )
        yield (
            "done",
            {
                "answer": answer,
                "citations": citations,
                "uncertain": uncertain,
                "follow_ups": follow_ups,
                "mode": mode,
                "usage": usage,
            },
        )
    except RagError as exc:
        logger.warning("answer %s failed: %s", row.message_id, exc)
        outcome.update(status=Message.Status.ERROR, error=f"{exc.code}: {exc.message}")
        yield "error", {"code": exc.code, "message": _reader_message(exc)}
    except Exception as exc:
        logger.exception("answer %s failed unexpectedly", row.message_id)
        outcome.update(status=Message.Status.ERROR, error=f"internal_error: {exc!r}")
        yield "error", {"code": "internal_error", "message": INTERNAL_ERROR_MESSAGE}
    finally:
        # Reached on success, on error, and when the reader left (CancelledError or
        # GeneratorExit thrown in at an await or yield): close the model's stream, which
        # closes the upstream HTTP request, then store what the reader got.
        if tokens is not None:
            await _close(tokens)
        if outcome["status"] == Message.Status.PARTIAL:
            outcome["error"] = CANCELLED_ERROR
        outcome.setdefault("mode", Message.Mode.EXTRACTIVE)
        try:
            await sync_to_async(message_finish)(
                message=row,
                answer="".join(emitted),
                latency_ms=_elapsed_ms(started),
                ttft_ms=ttft_ms,
                **outcome,
            )
        except Exception:  # never mask the stream's own outcome (or a CancelledError)
            logger.exception("could not store answer %s", row.message_id)
        logger.info(
            "answer %s: %s, mode %s, %d ms",
            row.message_id,
            outcome["status"],
            outcome["mode"],
            _elapsed_ms(started),
        )


def _reader_message(exc: RagError) -> str:
    """What the reader is told: the component's message for infrastructure failures,
    a generic one for the model (its details may name internal hosts)."""
    if isinstance(exc, LLMError):
        return ANSWER_FAILED_MESSAGE
    return exc.message


async def _as_async(items: Sequence[str]) -> AsyncIterator[str]:
    for item in items:
        yield item


async def _close(iterator: AsyncIterator[str]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


def _elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


async def answer_collect(
    *,
    message: str,
    session_id: str | None = None,
    selection: str | None = None,
    embedder: Embedder | None = None,
    store: VectorStore | None = None,
    llm: ChatModel | None = None,
    fallback_llm: ChatModel | None = None,
) -> dict[str, Any]:
    """Run `answer_stream` to the end and merge meta, sources and done into one dict.

    Raises:
        RagError: the subclass matching the failure's code (LLMError, EmbeddingError,
            VectorStoreError, ...), when the answer failed.
    """
    result: dict[str, Any] = {}
    async for event, data in answer_stream(
        message=message,
        session_id=session_id,
        selection=selection,
        embedder=embedder,
        store=store,
        llm=llm,
        fallback_llm=fallback_llm,
    ):
        if event == "error":
            raise _error_class(data["code"])(
                data["message"], details={"message_id": result.get("message_id")}
            )
        if event != "token":
            result.update(data)
    return result
