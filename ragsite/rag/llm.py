"""Chat models: an OpenAI-compatible API, and the offline extractive answerer.

Both implement the `ChatModel` Protocol of types.py: `stream(request)` yields the
answer in pieces, `complete(messages)` returns a short non-streamed text. The `openai`
SDK itself, and the translation of its errors, stay in openai_clients.py.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .exceptions import LLMError
from .openai_clients import OpenAIClients, sdk_errors
from .types import AnswerRequest, ChatMessage, Source

if TYPE_CHECKING:
    from .config import RagConfig

logger = logging.getLogger(__name__)

LLM_EMPTY_MESSAGE = "The language model returned an empty answer."
EXTRACTIVE_NOTICE = (
    "No language model is configured, so this answer quotes the most relevant passages of the book."
)
NO_SOURCES_MESSAGE = (
    "The book does not seem to cover this. Try rephrasing the question, or ask about "
    "a topic from the book's table of contents."
)
EXTRACTIVE_CANNOT_COMPLETE_MESSAGE = (
    "No language model is configured: the extractive answerer can only quote the book."
)
ANSWER_TEMPERATURE = 0.2
DEFAULT_MAX_TOKENS = 700  # LLM_MAX_TOKENS's default


# --- OpenAI-compatible chat model -------------------------------------------------


class OpenAIChatModel:
    """Chat completions from OpenAI or any OpenAI-compatible server (Ollama, vLLM, ...)."""

    provider = "openai"

    def __init__(
        self,
        *,
        model: str,
        api_key: str = "",
        base_url: str = "",
        timeout: float = 30.0,
        max_retries: int = 2,
        temperature: float = ANSWER_TEMPERATURE,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        """Configure the client; nothing is sent until the first call.

        `max_tokens` caps every call (answers and short completions alike).
        """
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self._clients = OpenAIClients(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )

    @classmethod
    def from_config(cls, config: RagConfig) -> OpenAIChatModel:
        """Build the model from OPENAI_* settings."""
        return cls(
            model=config.openai_chat_model,
            api_key=config.openai_api_key,
            base_url=config.openai_base_url,
            timeout=config.openai_timeout,
            max_retries=config.openai_max_retries,
            max_tokens=config.llm_max_tokens,
        )

    async def stream(self, request: AnswerRequest) -> AsyncIterator[str]:
        """Yield the answer's text pieces as the model produces them; fill `request.usage`.

        Closing this generator (the reader left) closes the upstream HTTP stream.
        Raises LLMTimeout or LLMError once the SDK's retries are used up.
        """
        messages = _as_openai_messages(request.messages) or [
            {"role": "user", "content": request.question}
        ]
        client = self._clients.async_client()
        with sdk_errors(purpose="chat", model=self.model):
            stream = await client.chat.completions.create(
                model=self.model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                temperature=self.temperature,
                max_tokens=self.max_tokens,
            )
        # `async with` closes the response however we leave: done, error, or a
        # CancelledError/GeneratorExit thrown in at a `yield` when the reader leaves.
        async with stream:
            # Also a failure mid-stream (read timeout, reset).
            with sdk_errors(purpose="chat", model=self.model):
                async for chunk in stream:
                    if chunk.usage is not None:
                        request.usage.update(
                            prompt_tokens=chunk.usage.prompt_tokens,
                            completion_tokens=chunk.usage.completion_tokens,
                            total_tokens=chunk.usage.total_tokens,
                        )
                    for choice in chunk.choices:
                        if choice.delta is not None and choice.delta.content:
                            yield choice.delta.content

    async def complete(self, messages: Sequence[ChatMessage], *, max_tokens: int = 256) -> str:
        """Return a short non-streamed completion; raises LLMTimeout or LLMError."""
        with sdk_errors(purpose="chat", model=self.model):
            response = await self._clients.async_client().chat.completions.create(
                model=self.model,
                messages=_as_openai_messages(messages),
                max_tokens=min(max_tokens, self.max_tokens),
                temperature=self.temperature,
            )
        if not response.choices or response.choices[0].message.content is None:
            raise LLMError(LLM_EMPTY_MESSAGE)
        return response.choices[0].message.content

    async def ping(self) -> None:
        """List the server's models (a real call that costs no tokens); raises LLMError."""
        with sdk_errors(purpose="chat", model=self.model):
            # No retries: health checks should report a dead server quickly.
            await self._clients.async_client().with_options(max_retries=0).models.list()

    async def aclose(self) -> None:
        """Close the HTTP connections opened from the running event loop (scripts, tests)."""
        await self._clients.aclose()


def _as_openai_messages(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    return [{"role": message.role, "content": message.content} for message in messages]


# --- extractive answerer ----------------------------------------------------------

MIN_SENTENCES = 2
MAX_SENTENCES = 4
MIN_SENTENCE_CHARS = 25
MIN_SENTENCE_WORDS = 4
MAX_SENTENCE_CHARS = 320

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not now of off on once only or
    other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your
    yours yourself yourselves explain tell describe please mean means meaning use used using
    book chapter""".split()
)
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "cf.", "fig.", "eq.", "dr.", "mr.", "ms.", "no.")

_FRONT_MATTER = re.compile(r"\A\s*---\n.*?\n---[ \t]*(\n|\Z)", re.DOTALL)
_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
_HTML_TAG = re.compile(r"</?[A-Za-z][^>\n]*>")
_MDX_LINE = re.compile(r"^\s*(import|export)\s.*$", re.MULTILINE)
_ADMONITION = re.compile(r"^\s*:::\s*\w*.*$", re.MULTILINE)
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
# Underscores only emphasise at word edges (CommonMark), so snake_case identifiers survive.
_EMPHASIS = re.compile(r"(\*\*|\*)(?=\S)(.+?)(?<=\S)\1|(?<!\w)(__|_)(?=\S)(.+?)(?<=\S)\3(?!\w)")
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_CITATION = re.compile(r"\[\d+\]")


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A sentence of a source that may be quoted."""

    source_index: int  # order of the source as given (retrieval rank)
    position: int  # order of the sentence within its source
    n: int  # the source's citation number
    text: str
    overlap: int  # distinct question content words it contains


def _stem(word: str) -> str:
    """Fold common endings so 'measure', 'measures', 'measured' and 'measuring' match."""
    for suffix in ("ing", "ies", "es", "ed", "s"):
        if suffix == "s" and word.endswith("ss"):  # "class", not a plural
            break
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + ("y" if suffix == "ies" else "")
            break
    if word.endswith("e") and len(word) > 3:  # "measure" -> "measur", like "measures"
        word = word[:-1]
    return word


def content_words(text: str) -> set[str]:
    """Return the stemmed, lowercased words of a text that carry meaning."""
    return {
        _stem(word)
        for word in _WORD.findall(text.lower())
        if word not in STOPWORDS and (len(word) > 2 or word.isdigit())
    }


def _clean_markdown(text: str) -> str:
    """Drop code blocks, MDX/HTML and Markdown markup, keeping the prose."""
    text = _FRONT_MATTER.sub("", text)
    text = _FENCE.sub("\n\n", text)
    text = _MDX_LINE.sub("", text)
    text = _ADMONITION.sub("", text)
    text = _IMAGE.sub("", text)
    text = _HTML_TAG.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _INLINE_CODE.sub(r"\1", text)
    text = _EMPHASIS.sub(lambda m: m.group(2) or m.group(4), text)
    text = _CITATION.sub("", text)  # a quoted "[2]" from the book would pose as our citation
    return text


def _looks_like_prose(sentence: str) -> bool:
    """Reject headings, table rows, code-ish and very short fragments."""
    if len(sentence) < MIN_SENTENCE_CHARS or len(sentence.split()) < MIN_SENTENCE_WORDS:
        return False
    if sentence.startswith(("#", "|", ">")) or sentence.count("|") >= 2:
        return False
    if sentence.endswith(":"):  # introduces a list or code that is not quoted with it
        return False
    letters = sum(ch.isalnum() or ch.isspace() for ch in sentence)
    return letters / len(sentence) >= 0.85


def split_sentences(text: str) -> list[str]:
    """Split Markdown prose into sentences (each list item and paragraph stands alone)."""
    sentences: list[str] = []
    for block in re.split(r"\n\s*\n", _clean_markdown(text)):
        # Headings and table rows are lines of their own; list items end a sentence.
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        buffer: list[str] = []
        parts: list[str] = []
        for line in lines:
            if line.startswith(("#", "|")) or _LIST_MARKER.match(line):
                if buffer:
                    parts.append(" ".join(buffer))
                    buffer = []
                parts.append(_LIST_MARKER.sub("", line))
            else:
                buffer.append(line)
        if buffer:
            parts.append(" ".join(buffer))
        for part in parts:
            sentences.extend(_split_part(part))
    return [s for s in (" ".join(s.split()) for s in sentences) if s]


def _split_part(part: str) -> list[str]:
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(part):
        candidate = part[start : match.start()].rstrip()
        last_word = candidate.rsplit(maxsplit=1)[-1].lower() if candidate else ""
        if last_word in _ABBREVIATIONS or re.fullmatch(r"[a-z]\.", last_word):
            continue  # "e.g. The" or an initial: not a sentence end
        pieces.append(part[start : match.end()].strip())
        start = match.end()
    pieces.append(part[start:].strip())
    return [piece for piece in pieces if piece]


def _shorten(sentence: str) -> str:
    if len(sentence) <= MAX_SENTENCE_CHARS:
        return sentence
    cut = sentence[:MAX_SENTENCE_CHARS].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "…"


def _with_citation(sentence: str, n: int) -> str:
    """Put `[n]` before the sentence's closing punctuation: 'Lidar measures depth [2].'"""
    sentence = sentence.rstrip()
    match = re.search(r"([.!?…]+[\"')\]]*)$", sentence)
    if match:
        return f"{sentence[: match.start()]} [{n}]{match.group(1)}"
    return f"{sentence.rstrip(',;:')} [{n}]."


def _candidates(question_words: set[str], sources: Sequence[Source]) -> list[_Candidate]:
    seen: set[str] = set()
    candidates: list[_Candidate] = []
    for source_index, source in enumerate(sources):
        body = source.chunk.body or source.chunk.text
        for position, sentence in enumerate(split_sentences(body)):
            if not _looks_like_prose(sentence):
                continue
            key = " ".join(_WORD.findall(sentence.lower()))
            if key in seen:  # neighbouring chunks overlap: quote a sentence once
                continue
            seen.add(key)
            overlap = len(question_words & content_words(sentence))
            candidates.append(
                _Candidate(source_index, position, source.n, _shorten(sentence), overlap)
            )
    return candidates


def _select(candidates: list[_Candidate]) -> list[_Candidate]:
    """Pick 2–4 sentences: the best matches, then the sources' leads as a fallback."""
    ranked = sorted(candidates, key=lambda c: (-c.overlap, c.source_index, c.position))
    if not ranked:
        return []
    best = ranked[0].overlap
    chosen: list[_Candidate] = []
    for candidate in ranked:
        if len(chosen) >= MAX_SENTENCES:
            break
        strong = candidate.overlap > 0 and candidate.overlap * 2 >= best
        if strong or len(chosen) < MIN_SENTENCES:
            chosen.append(candidate)
    return chosen


def extractive_answer(*, question: str, sources: Sequence[Source]) -> str:
    """Compose an answer that quotes the sources' sentences closest to the question.

    Deterministic: same question and sources, same answer. Cites only the given
    sources' numbers. Without quotable sources, returns NO_SOURCES_MESSAGE.
    """
    chosen = _select(_candidates(content_words(question), sources))
    if not chosen:
        return NO_SOURCES_MESSAGE
    # One paragraph per source, so sentences of one passage stay together in the
    # book's order; the paragraph holding the best match comes first.
    paragraphs: dict[int, list[_Candidate]] = {}
    for candidate in chosen:  # best first
        paragraphs.setdefault(candidate.source_index, []).append(candidate)
    body = "\n\n".join(
        " ".join(_with_citation(c.text, c.n) for c in sorted(group, key=lambda c: c.position))
        for group in paragraphs.values()
    )
    return f"{EXTRACTIVE_NOTICE}\n\n{body}"


def stream_pieces(text: str) -> list[str]:
    """Split a text into word-sized pieces whose concatenation is the text."""
    return re.findall(r"\s*\S+\s*$|\s*\S+", text) or [text]


class ExtractiveChatModel:
    """The offline answerer: quotes the retrieved passages, cites them, invents nothing."""

    provider = "extractive"
    model = "extractive"

    async def stream(self, request: AnswerRequest) -> AsyncIterator[str]:
        """Yield the extractive answer word by word (no artificial delay)."""
        answer = extractive_answer(question=request.question, sources=request.sources)
        for piece in stream_pieces(answer):
            yield piece

    async def complete(self, messages: Sequence[ChatMessage], *, max_tokens: int = 256) -> str:
        """Always raises LLMError: there is no language model to write free text."""
        raise LLMError(EXTRACTIVE_CANNOT_COMPLETE_MESSAGE)
