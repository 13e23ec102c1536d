"""Our own dataclasses and the small Protocols every adapter implements.

Nothing outside the adapters sees an SDK type: Qdrant points, OpenAI chunks and ONNX
tensors are translated into these at the module boundary.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

# Fixed namespace: point ids are uuid5(namespace, identity), stable across runs/machines.
CHUNK_NAMESPACE = uuid.UUID("6f1c2f4e-3d0b-4b7e-9a55-2d9f5b0c7e11")

Vector = list[float]
SearchMode = Literal["hybrid", "dense", "sparse"]


def sha256_text(text: str) -> str:
    """Return the hex sha256 of a text's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chunk_id(path: str, content_hash: str, occurrence: int = 0) -> str:
    """Return the stable point id of a chunk: same file and content, same id.

    `occurrence` tells apart identical chunks within one file (rare, e.g. a repeated
    code sample), so re-ingesting upserts instead of duplicating.
    """
    return str(uuid.uuid5(CHUNK_NAMESPACE, f"{path}\0{content_hash}\0{occurrence}"))


@dataclass(frozen=True, slots=True)
class Chunk:
    """One retrievable piece of a book page, with everything needed to cite it."""

    id: str
    text: str  # exactly what is embedded: breadcrumb line + body
    body: str  # the section text alone, for snippets and extractive answers
    title: str  # page title
    heading: str  # heading path inside the page, "Chapter 2 > Sensors > Lidar" ("" at the top)
    path: str  # posix path relative to BOOK_DIR
    url: str | None  # published page + "#anchor", None without SITE_URL
    position: int  # order of the chunk within its page
    content_hash: str  # sha256 of `text`
    token_count: int = 0

    def payload(self) -> dict[str, Any]:
        """Return the chunk as a JSON-able dict (the vector store payload)."""
        return {
            "text": self.text,
            "body": self.body,
            "title": self.title,
            "heading": self.heading,
            "path": self.path,
            "url": self.url,
            "position": self.position,
            "content_hash": self.content_hash,
            "token_count": self.token_count,
        }

    @classmethod
    def from_payload(cls, point_id: str, payload: dict[str, Any]) -> Chunk:
        """Rebuild a chunk from a stored payload."""
        return cls(
            id=str(point_id),
            text=payload.get("text", ""),
            body=payload.get("body", payload.get("text", "")),
            title=payload.get("title", ""),
            heading=payload.get("heading", ""),
            path=payload.get("path", ""),
            url=payload.get("url"),
            position=int(payload.get("position", 0)),
            content_hash=payload.get("content_hash", ""),
            token_count=int(payload.get("token_count", 0)),
        )


@dataclass(frozen=True, slots=True)
class SparseVector:
    """BM25-style term weights: hashed term ids and their weights."""

    indices: list[int]
    values: list[float]


@dataclass(frozen=True, slots=True)
class Hit:
    """A chunk returned by a search.

    `score` is the cosine similarity of the chunk to the query (comparable across
    queries, so a floor can be applied); `rank_score` is what ordered the results
    (the RRF fusion score in hybrid mode).
    """

    chunk: Chunk
    score: float
    rank_score: float = 0.0


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One turn of a conversation, as sent to a chat model."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class Source:
    """A numbered source shown to the reader and cited as [n] in answers."""

    n: int
    chunk: Chunk
    score: float
    snippet: str
    # The text of the chunks around `chunk` on its page, in its section, that the source
    # reads on into (before it, after it; the chunker's overlap not repeated), and those
    # chunks' content hashes in page order: their stored sentence vectors are its too.
    before: str = ""
    after: str = ""
    neighbours: tuple[str, ...] = ()
    # The parts of `before` and `after` read from chunks that were among retrieval's own
    # hits (a section's other hits, which `hits_distinct_sections` folds into its best),
    # each with that hit's rank (0-based): that text was found for the question, not
    # only read around what was.
    found_around: tuple[tuple[str, int], ...] = ()

    @property
    def body(self) -> str:
        """The source's text: its chunk's body, with what it reads on into around it."""
        own = self.chunk.body or self.chunk.text
        if not self.before and not self.after:
            return own
        return "\n\n".join(part for part in (self.before, own.strip(), self.after) if part)

    def as_dict(self) -> dict[str, Any]:
        """Return the source as the `sources` event describes it in API.md."""
        return {
            "n": self.n,
            "title": self.chunk.title,
            "heading": self.chunk.heading,
            "url": self.chunk.url,
            "path": self.chunk.path,
            "score": round(self.score, 4),
            "snippet": self.snippet,
        }


@dataclass(slots=True)
class AnswerRequest:
    """What a chat model needs to answer: the prompt messages, the question and sources.

    LLM models read `messages`; the extractive model reads `question` and `sources`.
    The model fills `usage` (token counts) while it streams.
    """

    question: str
    sources: Sequence[Source]
    messages: Sequence[ChatMessage] = ()
    usage: dict[str, int] = field(default_factory=dict)
    # The sources' sentence vectors stored at ingestion, per chunk (content hash ->
    # sentence_key -> vector, ragsite/rag/sentences.py): a sentence overlapping chunks
    # share has a vector in each. The extractive model scores sentences with them.
    sentence_vectors: Mapping[str, Mapping[bytes, Any]] = field(default_factory=dict)


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into dense vectors."""

    provider: str  # "local" | "openai"
    model: str
    dimension: int

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        """Return one L2-normalised vector per text, in order."""
        ...

    def embed_sync(self, texts: Sequence[str]) -> list[Vector]:
        """Like `embed`, for synchronous callers (ingestion runs in a worker thread)."""
        ...


def embedder_key(embedder: Embedder) -> str:
    """An embedder's name in stored data (embedding cache, sentence vectors):
    provider, model and dimension."""
    return f"{embedder.provider}:{embedder.model}:{embedder.dimension}"


@runtime_checkable
class ChatModel(Protocol):
    """Streams an answer as text pieces."""

    provider: str  # "openai" | "extractive"
    model: str

    def stream(self, request: AnswerRequest) -> AsyncIterator[str]:
        """Yield the answer piece by piece."""
        ...

    async def complete(self, messages: Sequence[ChatMessage], *, max_tokens: int = 256) -> str:
        """Return a short non-streamed completion (query rewriting, follow-ups)."""
        ...


@runtime_checkable
class VectorStore(Protocol):
    """A collection of chunks with dense and sparse vectors. Synchronous: call it
    through `asyncio.to_thread` from async code."""

    mode: str  # "embedded" | "server"
    collection: str

    def ensure_collection(self, *, dimension: int) -> None:
        """Create the collection if missing; raise if it exists with another dimension."""
        ...

    def upsert(self, chunks: Sequence[Chunk], vectors: Sequence[Vector]) -> None:
        """Insert or replace chunks (dense vector given, sparse computed from text)."""
        ...

    def delete(self, ids: Sequence[str]) -> None:
        """Remove points by id; unknown ids are ignored."""
        ...

    def search(
        self,
        *,
        query_text: str,
        query_vector: Vector | None,
        k: int,
        mode: SearchMode = "hybrid",
        paths: Sequence[str] | None = None,
    ) -> list[Hit]:
        """Return the best k chunks, best first.

        `mode="dense"` and `mode="sparse"` search one channel: `Hit.rank_score` is its
        raw score (cosine, or BM25 with the IDF), and `store_core.fuse_hits` fuses such
        lists exactly as `mode="hybrid"` does. `Hit.score` is the dense cosine whenever
        `query_vector` is given.
        """
        ...

    def search_channels(
        self,
        *,
        query_text: str,
        query_vector: Vector,
        k: int,
        paths: Sequence[str] | None = None,
    ) -> tuple[list[Hit], list[Hit]]:
        """Both channels at once, in one engine call: `search(mode="dense")` and
        `search(mode="sparse")` for the same query, each k deep."""
        ...

    def ids_by_path(self, path: str | None = None) -> dict[str, set[str]]:
        """Return {path: {point ids}} for one path or the whole collection."""
        ...

    def get_vectors(self, ids: Sequence[str]) -> dict[str, Vector]:
        """Return the dense vectors of the given ids that exist."""
        ...

    def chunks_at(self, places: Sequence[tuple[str, int]]) -> list[Chunk]:
        """Return the chunks at these (path, position) places that exist, in one call."""
        ...

    def count(self) -> int:
        """Return the number of points in the collection (0 if it does not exist)."""
        ...

    def drop(self) -> None:
        """Delete the whole collection."""
        ...

    def health(self) -> dict[str, Any]:
        """Return {"status", "mode", "points"}; raise VectorStoreError when broken."""
        ...

    def warm(self, limit: int) -> list[Chunk]:
        """Read up to `limit` points into what searches keep in memory (a start-up step);
        return their chunks. A store that keeps nothing reads nothing and returns []."""
        ...
