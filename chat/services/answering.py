"""Answering a reader's question: the chat stream of API.md as typed events.

Order: `Meta` as soon as the session is known (one read, before any embedding),
`Sources` as soon as retrieval finishes (before the model is called), then `Token`s,
then `Done` or one `Failed`. The message row is written once, with the outcome:
before `Done` or `Failed` is yielded (so an answer the reader got whole is stored
whole, even if the reader leaves a millisecond later), or in `finally` as `partial`
when the reader left mid-answer (that write is shielded from the cancellation).

The LLM has two deadlines (LLM_FIRST_TOKEN_TIMEOUT_S, LLM_ANSWER_TIMEOUT_S): a model
that fails, sends garbage or stays silent before its first token is replaced by the
extractive answer with a notice; after it, a failure or the whole-answer deadline
ends the stream with one error event.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import re
import time
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections

from chat import prompts
from chat.models import Message
from chat.prompts import Turn
from ragsite.rag import providers
from ragsite.rag.config import RagConfig, get_config
from ragsite.rag.exceptions import LLM_UNAVAILABLE_MESSAGE, LLMError, LLMTimeout, RagError
from ragsite.rag.llm import EXTRACTIVE_NOTICE, stream_pieces
from ragsite.rag.types import AnswerRequest, ChatModel, Chunk, Embedder, Source, VectorStore

from .citations import CitationFilter
from .conversations import AnswerStart, MessageWrite, answer_start, messages_store
from .events import (
    INTERNAL_ERROR_MESSAGE,
    AnswerOutcome,
    ChatEvent,
    Done,
    Failed,
    Meta,
    Sources,
    Token,
)
from .follow_ups import follow_ups_suggest
from .retrieval import book_search_embedded
from .rewriting import query_rewrite
from .sources import sources_pack_counted, sources_sentence_vectors

logger = logging.getLogger(__name__)

T = TypeVar("T")

CANCELLED_ERROR = "The reader closed the connection before the answer was complete."
LLM_ANSWER_TIMEOUT_MESSAGE = "The language model did not finish the answer in time."
LLM_UNUSABLE_REASON = "unusable response"
SELECTION_QUERY_CHARS = 1000  # how much of a highlighted passage joins the search query
# Token events are coalesced: one per sentence, or per this many seconds of streaming.
TOKEN_WINDOW_S = 0.02
# Longest an extractive answer waits for other questions' sources (`_SourcesFirst`).
SOURCES_FIRST_MAX_WAIT_S = 0.25
_SENTENCE_END = re.compile(r"(?:[.!?…:][\"')\]*_]*|\n)\s*$")
# Writes still running after their request was cancelled (kept so they are not collected).
_pending_writes: set[asyncio.Future[Any]] = set()


@dataclass(frozen=True, slots=True)
class Collaborators:
    """The components one answer uses (resolved from the providers when not given)."""

    embedder: Embedder
    store: VectorStore
    llm: ChatModel
    fallback_llm: ChatModel


@dataclass(slots=True)
class _Deadlines:
    """The LLM's time limits for one answer, in event-loop time."""

    first_token_s: float
    answer_s: float


def _mode_of(model: ChatModel) -> str:
    return Message.Mode.EXTRACTIVE if model.provider == "extractive" else Message.Mode.LLM


def uncertain_answer(*, closest: Sequence[Source]) -> str:
    """The short answer when the book offers no support: say so, name the nearest sections."""
    if not closest:
        return f"{prompts.UNCERTAIN_ANSWER} {prompts.UNCERTAIN_NOTHING_CLOSE}"
    lines = [f"{prompts.UNCERTAIN_ANSWER} {prompts.UNCERTAIN_CLOSEST}", ""]
    lines += [f"- {prompts.source_label(source)}" for source in closest]
    return "\n".join(lines)


def _resolve(
    embedder: Embedder | None,
    store: VectorStore | None,
    llm: ChatModel | None,
    fallback_llm: ChatModel | None,
) -> Collaborators:
    """The collaborators, on the event loop: the providers are cached after their first call."""
    return Collaborators(
        embedder=embedder or providers.get_embedder(),
        store=store or providers.get_store(),
        llm=llm or providers.get_chat_model(),
        fallback_llm=fallback_llm or providers.get_extractive_model(),
    )


async def _as_async(items: Sequence[str]) -> AsyncIterator[str]:
    for item in items:
        yield item


async def _close(iterator: AsyncIterator[str] | None) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


async def _guarded(pieces: AsyncIterator[str]) -> AsyncIterator[str]:
    """The model's pieces; anything it raises that is not ours (garbage the SDK could not
    parse, a non-text piece) becomes an LLMError, so it is handled like an outage."""
    try:
        async for piece in pieces:
            if not isinstance(piece, str):
                raise LLMError(LLM_UNAVAILABLE_MESSAGE, details={"reason": LLM_UNUSABLE_REASON})
            yield piece
    except RagError:
        raise
    except Exception as exc:
        logger.warning("the chat model sent something unusable: %r", exc)
        raise LLMError(LLM_UNAVAILABLE_MESSAGE, details={"reason": LLM_UNUSABLE_REASON}) from exc
    finally:
        await _close(pieces)


def _sentences_of(text: str) -> list[str]:
    """The text in pieces that end where the coalescer ends an event (`_SENTENCE_END`)."""
    pieces: list[str] = []
    words: list[str] = []
    for word in stream_pieces(text):
        words.append(word)
        if _SENTENCE_END.search(word):
            pieces.append("".join(words))
            words = []
    if words:
        pieces.append("".join(words))
    return pieces


async def _fallback_pieces(model: ChatModel, request: AnswerRequest) -> AsyncIterator[str]:
    """The extractive answer, introduced by one notice: the LLM is unavailable."""
    text = "".join([piece async for piece in model.stream(request)])
    if text.startswith(EXTRACTIVE_NOTICE):
        text = text[len(EXTRACTIVE_NOTICE) :].lstrip()
    for piece in stream_pieces(prompts.LLM_FALLBACK_NOTICE + text):
        yield piece


class _AnswerPieces:
    """The answer's text pieces under the LLM's deadlines; `mode` says who wrote them."""

    def __init__(
        self,
        *,
        model: ChatModel,
        fallback: ChatModel,
        request: AnswerRequest,
        deadlines: _Deadlines,
    ) -> None:
        self.model, self.fallback, self.request = model, fallback, request
        self.deadlines = deadlines
        self.mode = _mode_of(model)

    async def __aiter__(self) -> AsyncIterator[str]:
        """Yield the pieces: the model's, or the extractive answer when it fails early."""
        if self.mode == Message.Mode.EXTRACTIVE:
            # The local answerer has no deadlines to keep and its answer is whole at
            # once: a sentence per piece, as the coalescer sends it (a timeout and four
            # generator hops per word were ~5 % of the server's CPU under load).
            tokens = _guarded(self.model.stream(self.request))
            try:
                text = "".join([piece async for piece in tokens])
            finally:
                await _close(tokens)
            for piece in _sentences_of(text):
                yield piece
            return
        loop = asyncio.get_running_loop()
        answer_deadline: float | None = loop.time() + self.deadlines.answer_s
        first_deadline = min(loop.time() + self.deadlines.first_token_s, answer_deadline)
        tokens = aiter(_guarded(self.model.stream(self.request)))
        try:
            try:
                async with asyncio.timeout_at(first_deadline):
                    piece = await anext(tokens, None)
                if piece is None:
                    raise LLMError(LLM_UNAVAILABLE_MESSAGE, details={"reason": "empty answer"})
            except (LLMError, TimeoutError) as exc:
                logger.warning("LLM failed before its first token, answering extractively: %r", exc)
                await _close(tokens)
                self.mode = Message.Mode.EXTRACTIVE
                tokens = aiter(_fallback_pieces(self.fallback, self.request))
                answer_deadline = None  # the extractive answer is local and quick
                piece = await anext(tokens, None)
            while piece is not None:
                yield piece
                try:
                    async with asyncio.timeout_at(answer_deadline):
                        piece = await anext(tokens, None)
                except TimeoutError as exc:
                    raise LLMTimeout(LLM_ANSWER_TIMEOUT_MESSAGE) from exc
        finally:
            await _close(tokens)


class _Coalescer:
    """Joins token pieces into fewer events: one per sentence, or per `window_s` seconds.

    The first text goes out at once (time to first token is what readers feel).
    """

    def __init__(self, window_s: float = TOKEN_WINDOW_S) -> None:
        self.window_s = window_s
        self.buffer: list[str] = []
        self.flushed_at: float | None = None

    def add(self, text: str) -> str | None:
        """Buffer `text`; return what should be sent now, if anything."""
        self.buffer.append(text)
        now = time.monotonic()
        if (
            self.flushed_at is None
            or now - self.flushed_at >= self.window_s
            or _SENTENCE_END.search(text)
        ):
            return self.flush()
        return None

    def flush(self) -> str | None:
        """Return and forget the buffered text (None when there is none)."""
        text = "".join(self.buffer)
        self.buffer = []
        if not text:
            return None
        self.flushed_at = time.monotonic()
        return text


class _SourcesFirst:
    """Under a burst, every question's sources before any extractive answer is composed.

    Composing an extractive answer is CPU work on the event loop (a few ms); a question
    still on its way to its `sources` event waits behind it. So an answer about to be
    composed extractively first waits for the questions that were before their sources
    when it reached its own, at most SOURCES_FIRST_MAX_WAIT_S: in a burst of 50 questions
    every reader sees the passages first, and the answers follow in the same total time.
    Questions that arrive later do not lengthen the wait (under a steady load there is
    always a newer one), and one quiet question never waits.
    """

    def __init__(self) -> None:
        # Weak: a stream dropped without being closed cannot keep answers waiting.
        self.before_sources: weakref.WeakSet[_BeforeSources] = weakref.WeakSet()

    def enter(self) -> _BeforeSources:
        ticket = _BeforeSources(self)
        self.before_sources.add(ticket)
        return ticket

    def _left(self, ticket: _BeforeSources) -> None:
        self.before_sources.discard(ticket)
        waiters, ticket.waiters = ticket.waiters, []
        for waiter in waiters:
            waiter.one_left()

    async def turn(self) -> None:
        ahead = list(self.before_sources)
        if not ahead:
            return
        waiter = _Waiter(len(ahead), asyncio.get_running_loop().create_future())
        for ticket in ahead:
            ticket.waiters.append(waiter)
        del ahead  # a dropped stream's ticket must not be kept alive by this wait
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter.future, SOURCES_FIRST_MAX_WAIT_S)


class _Waiter:
    """An answer waiting for `remaining` questions ahead of it to reach their sources."""

    __slots__ = ("future", "remaining")

    def __init__(self, remaining: int, future: asyncio.Future[None]) -> None:
        self.remaining, self.future = remaining, future

    def one_left(self) -> None:
        self.remaining -= 1
        if self.remaining <= 0 and not self.future.done():
            self.future.set_result(None)


class _BeforeSources:
    """One question before its sources; `leave()` once they are out (idempotent)."""

    __slots__ = ("__weakref__", "_gate", "waiters")

    def __init__(self, gate: _SourcesFirst) -> None:
        self._gate: _SourcesFirst | None = gate
        self.waiters: list[_Waiter] = []

    def leave(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate._left(self)


_SOURCES_FIRST: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _SourcesFirst] = (
    weakref.WeakKeyDictionary()
)


def _sources_first() -> _SourcesFirst:
    return _of_this_loop(_SOURCES_FIRST, _SourcesFirst)


def _of_this_loop(registry: weakref.WeakKeyDictionary[Any, Any], new: Callable[[], T]) -> T:
    """The running event loop's own instance in `registry`, made with `new` at first."""
    loop = asyncio.get_running_loop()
    found = registry.get(loop)
    if found is None:
        found = registry[loop] = new()
    return found


def _elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


class _MessageWrites:
    """The answers' message writes of one event loop: one transaction in flight, and the
    writes that arrive meanwhile stored together in the next (`messages_store`).

    A quiet answer's write starts at once. Under load many answers finish together, and
    each SQLite statement hands the GIL to a busy thread and waits to get it back, with
    the process's write lock held: written one by one, 50 answers' writes queued ~150 ms
    before their `done`. The writes run in a thread of their own (`_WRITER`), not in the
    request's: a batch holds other requests' writes and may outlive the request that
    started it.
    """

    def __init__(self) -> None:
        self.pending: list[tuple[MessageWrite, asyncio.Future[None]]] = []
        self.running: asyncio.Task[None] | None = None

    def store(self, write: MessageWrite) -> asyncio.Future[None]:
        """Queue one answer's write; the future is done once it is stored (or failed)."""
        future = asyncio.get_running_loop().create_future()
        self.pending.append((write, future))
        if self.running is None:
            self._start()
        return future

    def _start(self) -> None:
        batch, self.pending = self.pending, []
        # In a context of its own: the batch is everyone's, not the starting request's.
        loop = asyncio.get_running_loop()
        self.running = loop.create_task(self._run(batch), context=contextvars.Context())
        _pending_writes.add(self.running)
        self.running.add_done_callback(_pending_writes.discard)

    async def _run(self, batch: list[tuple[MessageWrite, asyncio.Future[None]]]) -> None:
        try:
            stored = await sync_to_async(
                _messages_store_in_writer, thread_sensitive=False, executor=_WRITER
            )([write for write, _ in batch])
        except Exception as exc:  # the database is unusable: every write of the batch failed
            stored = [exc] * len(batch)
        finally:
            self.running = None
            if self.pending:  # what arrived during this write is the next, at once
                self._start()
        for (_, future), result in zip(batch, stored, strict=True):
            if isinstance(result, Exception):
                future.set_exception(result)  # retrieved by `_store`'s shield
            else:
                future.set_result(None)


# The thread that stores the answers' messages (one for the process: SQLite has one
# writer at a time anyway, and PostgreSQL's pool lends it a connection per batch).
_WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="message-writes")


def _messages_store_in_writer(writes: list[MessageWrite]) -> list[Message | Exception]:
    """`messages_store` in the writer thread, whose connection is looked after as a
    request's is (Django's request signals run in request threads, not this one)."""
    close_old_connections()
    try:
        return messages_store(writes)
    finally:
        close_old_connections()  # PostgreSQL: back to the pool; SQLite: kept a while


_MESSAGE_WRITES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _MessageWrites] = (
    weakref.WeakKeyDictionary()
)


def _message_writes() -> _MessageWrites:
    return _of_this_loop(_MESSAGE_WRITES, _MessageWrites)


async def _store(
    *, start: AnswerStart, question: str, selection: str, outcome: AnswerOutcome
) -> None:
    """Write the message row; shielded, so a reader leaving cannot stop the write."""
    write = _message_writes().store(MessageWrite(start, question, selection, outcome))
    try:
        await asyncio.shield(write)
    except asyncio.CancelledError:
        raise  # the write goes on by itself
    except Exception:  # never mask the stream's own outcome
        logger.exception("could not store answer %s", start.message_id)


async def answer_stream(
    *,
    message: str,
    session_id: str | None = None,
    selection: str | None = None,
    embedder: Embedder | None = None,
    store: VectorStore | None = None,
    llm: ChatModel | None = None,
    fallback_llm: ChatModel | None = None,
) -> AsyncIterator[ChatEvent]:
    """Answer `message` from the book, yielding the events of API.md's chat stream.

    Args:
        message: the reader's question (validated: 1..2000 characters).
        session_id: from an earlier `meta`; unknown or expired ones start a new session.
        selection: text the reader highlighted; it becomes source 1.
        embedder, store, llm, fallback_llm: collaborators; default to the providers
            (`fallback_llm` answers when `llm` fails before its first token).

    Yields:
        Meta, Sources, Token*, then Done or Failed.

    The message is stored complete, as an error, or partial when the consumer stops
    early (the reader closed the tab). CancelledError is re-raised.
    """
    config = get_config()
    started = time.perf_counter()
    gate = _sources_first()
    before_sources = gate.enter()  # left once `sources` is out, or the answer ends
    try:
        # A first question has no conversation to read: no thread hop before `meta`.
        start = (
            await sync_to_async(answer_start)(
                session_id=session_id, turns=config.chat_history_turns
            )
            if session_id
            else AnswerStart.new()
        )
    except Exception as exc:
        # The database is unusable: there is no message to report on, but the stream
        # (whose headers are already sent) still ends with one readable event.
        logger.exception("could not start a conversation")
        before_sources.leave()
        yield Failed(RagError(INTERNAL_ERROR_MESSAGE, details={"cause": type(exc).__name__}))
        return
    yield Meta(session_id=str(start.session_id), message_id=str(start.message_id))

    outcome = AnswerOutcome()
    emitted: list[str] = []
    stored = False

    async def finish() -> None:
        nonlocal stored
        stored = True  # once: a write cancelled half-way goes on by itself
        outcome.answer = "".join(emitted)
        outcome.latency_ms = _elapsed_ms(started)
        await _store(start=start, question=message, selection=selection or "", outcome=outcome)

    try:
        parts = _resolve(embedder, store, llm, fallback_llm)
        outcome.mode = _mode_of(parts.llm)
        outcome.rewritten_query = await query_rewrite(
            message=message,
            history=start.history,
            llm=parts.llm,
            timeout_s=config.rewrite_timeout_s,
        )
        packed = await _sources(
            query=outcome.rewritten_query, selection=selection, parts=parts, config=config
        )
        sources, context_tokens, uncertain = packed.sources, packed.context_tokens, packed.uncertain
        outcome.sources = [source.as_dict() for source in sources]
        before_sources.leave()
        yield Sources(sources=outcome.sources)
        if uncertain or parts.llm.provider == "extractive":
            await gate.turn()  # CPU on this loop: let other questions reach their sources

        async with contextlib.aclosing(
            _answer_tokens(
                message=message,
                sources=sources,
                sentence_vectors=packed.sentence_vectors,
                uncertain=uncertain,
                history=start.history,
                parts=parts,
                config=config,
                outcome=outcome,
                emitted=emitted,
                started=started,
            )
        ) as tokens:
            async for token in tokens:
                yield token
        answer = "".join(emitted)
        if not uncertain and not outcome.citations and prompts.NOT_COVERED_PHRASE in answer.lower():
            uncertain = True  # the model found the sources beside the point
        outcome.uncertain = uncertain
        outcome.follow_ups = await follow_ups_suggest(
            question=message,
            answer=answer,
            sources=sources,
            llm=parts.fallback_llm if uncertain or outcome.mode != Message.Mode.LLM else parts.llm,
            timeout_s=config.llm_first_token_timeout_s,
        )
        outcome.usage = {**outcome.usage, "context_tokens": context_tokens}
        outcome.status = Message.Status.COMPLETE
        await finish()
        yield Done(
            answer=answer,
            citations=outcome.citations,
            uncertain=outcome.uncertain,
            follow_ups=outcome.follow_ups,
            mode=outcome.mode,
            usage=outcome.usage,
        )
    except RagError as exc:
        logger.warning("answer %s failed: %s", start.message_id, exc)
        outcome.status, outcome.error = Message.Status.ERROR, f"{exc.code}: {exc.message}"
        await finish()
        yield Failed(exc)
    except Exception as exc:
        logger.exception("answer %s failed unexpectedly", start.message_id)
        outcome.status, outcome.error = Message.Status.ERROR, f"internal_error: {exc!r}"
        await finish()
        yield Failed(RagError(INTERNAL_ERROR_MESSAGE))
    finally:
        before_sources.leave()
        # Reached on success, on error, and when the reader left (CancelledError or
        # GeneratorExit thrown in at an await or yield): store what the reader got.
        if not stored:
            if outcome.status == Message.Status.PARTIAL:
                outcome.error = CANCELLED_ERROR
            await finish()
        logger.info(
            "answer %s: %s, mode %s, %d ms",
            start.message_id,
            outcome.status,
            outcome.mode,
            _elapsed_ms(started),
        )


async def _answer_tokens(
    *,
    message: str,
    sources: list[Source],
    sentence_vectors: dict[str, Any],
    uncertain: bool,
    history: Sequence[Turn],
    parts: Collaborators,
    config: RagConfig,
    outcome: AnswerOutcome,
    emitted: list[str],
    started: float,
) -> AsyncIterator[Token]:
    """The answer as coalesced, citation-checked Token events (appended to `emitted`);
    fills the outcome's mode, time to first token, citations and usage."""
    request = AnswerRequest(
        question=message,
        sources=sources,
        messages=prompts.answer_messages(question=message, sources=sources, history=history),
        sentence_vectors=sentence_vectors,
    )
    pieces = _AnswerPieces(
        model=parts.llm,
        fallback=parts.fallback_llm,
        request=request,
        deadlines=_Deadlines(config.llm_first_token_timeout_s, config.llm_answer_timeout_s),
    )
    tokens = (
        _as_async(stream_pieces(uncertain_answer(closest=sources))) if uncertain else aiter(pieces)
    )
    citation_filter = CitationFilter(source.n for source in sources)
    coalescer = _Coalescer()
    try:
        async for piece in tokens:
            shown = coalescer.add(citation_filter.feed(piece))
            if shown:
                outcome.mode = pieces.mode
                if outcome.ttft_ms is None:
                    outcome.ttft_ms = _elapsed_ms(started)
                emitted.append(shown)
                yield Token(text=shown)
    finally:
        await _close(tokens)
    coalescer.add(citation_filter.flush())
    tail = coalescer.flush()
    if tail:
        emitted.append(tail)
        yield Token(text=tail)
    outcome.mode = pieces.mode
    outcome.citations = citation_filter.citations
    outcome.usage = dict(request.usage)


async def _sources(
    *, query: str, selection: str | None, parts: Collaborators, config: RagConfig
) -> _Packed:
    """Search, then pack the sources (and read their stored sentence vectors)."""
    search_query = f"{query}\n{selection[:SELECTION_QUERY_CHARS]}" if selection else query
    search = await book_search_embedded(
        query=search_query, k=config.retrieval_k, embedder=parts.embedder, store=parts.store
    )
    extractive = parts.llm.provider == "extractive"

    def search_and_pack() -> _Packed:
        # One worker thread for the search and the packing after it (token counting is
        # CPU work, kept off the event loop; each source is counted once). The same
        # thread reads the sources' stored sentence vectors (extractive answers).
        retrieval = search()
        uncertain = not retrieval.supported and not selection
        sources, context_tokens, vectors = _sources_pack(
            hits=retrieval.closest if uncertain else retrieval.sections,
            budget=config.context_token_budget,
            selection=selection,
            embedder=parts.embedder if extractive and not uncertain else None,
            store=None if uncertain else parts.store,
            found=[hit.chunk for hit in retrieval.hits],
        )
        return _Packed(sources, context_tokens, uncertain, vectors)

    return await asyncio.to_thread(search_and_pack)


@dataclass(frozen=True, slots=True)
class _Packed:
    """The packed sources of an answer, their prompt tokens, doubt, and sentence vectors."""

    sources: list[Source]
    context_tokens: int
    uncertain: bool
    sentence_vectors: dict[str, Any]


def _sources_pack(
    *,
    hits: Sequence[Any],
    budget: int,
    selection: str | None,
    embedder: Embedder | None,
    store: VectorStore | None = None,
    found: Sequence[Chunk] = (),
) -> tuple[list[Source], int, dict[str, Any]]:
    """Pack the sources (worker thread), with `store` reading on into the chunks around
    them (`found`: retrieval's hits); with `embedder`, read their sentence
    vectors too."""
    sources, context_tokens = sources_pack_counted(
        hits=hits, budget=budget, selection=selection, store=store, found=found
    )
    vectors: dict[str, Any] = {}
    if embedder is not None:
        try:
            vectors = sources_sentence_vectors(
                sources=sources, vectors=providers.get_sentence_vectors(), embedder=embedder
            )
        except Exception:  # an optimisation only: the sentences are embedded instead
            logger.exception("could not read the sources' sentence vectors")
    return sources, context_tokens, vectors


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
        RagError: the failure's own class (LLMError, EmbeddingError, VectorStoreError,
            ...) with the reader's message, when the answer failed.
    """
    result: dict[str, Any] = {}
    async for event in answer_stream(
        message=message,
        session_id=session_id,
        selection=selection,
        embedder=embedder,
        store=store,
        llm=llm,
        fallback_llm=fallback_llm,
    ):
        if isinstance(event, Failed):
            raise type(event.error)(
                event.message, details={"message_id": result.get("message_id")}
            ) from event.error
        if not isinstance(event, Token):
            result.update(event.data())
    return result
