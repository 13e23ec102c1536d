"""The vendored tokenizer: counts the chunker relies on, and its integrity check."""

from __future__ import annotations

import pytest

from ragsite.rag.exceptions import EmbeddingError
from ragsite.rag.tokens import (
    MAX_MODEL_TOKENS,
    TOKENIZER_PATH,
    TOKENIZER_SHA256,
    count_tokens,
    count_tokens_batch,
    load_tokenizer,
    read_tokenizer,
)

LONG_TEXT = " ".join(["robot"] * 600)


def test_counts_include_cls_and_sep():
    assert count_tokens("") == 2
    assert count_tokens("hello world") == 4
    assert load_tokenizer(truncate=False).encode("hello world").tokens == [
        "[CLS]",
        "hello",
        "world",
        "[SEP]",
    ]


def test_long_text_is_counted_in_full_not_capped():
    # Counting must not truncate, or the chunker would think any text fits.
    assert count_tokens(LONG_TEXT) == 602
    assert count_tokens(LONG_TEXT) > MAX_MODEL_TOKENS


def test_batch_counts_equal_single_counts():
    texts = ["", "hello world", "Lidar measures distance with laser pulses.", LONG_TEXT]
    assert count_tokens_batch(texts) == [count_tokens(text) for text in texts]
    assert count_tokens_batch([]) == []


def test_embedding_tokenizer_truncates_at_256_and_pads_to_batch_longest():
    tokenizer = load_tokenizer(truncate=True)
    assert len(tokenizer.encode(LONG_TEXT)) == MAX_MODEL_TOKENS
    short, longer = tokenizer.encode_batch(["hi", "a somewhat longer sentence"])
    # Padded to the longest of the batch (6 tokens), not the shipped fixed 128.
    assert len(short) == len(longer) == 6
    assert short.attention_mask == [1, 1, 1, 0, 0, 0]


def test_loaded_once_per_flag():
    assert load_tokenizer(truncate=False) is load_tokenizer(truncate=False)
    assert load_tokenizer(truncate=True) is not load_tokenizer(truncate=False)


def test_altered_tokenizer_file_is_refused(tmp_path):
    tampered = tmp_path / "tokenizer.json"
    tampered.write_bytes(TOKENIZER_PATH.read_bytes().replace(b'"[UNK]"', b'"[XXX]"', 1))
    with pytest.raises(EmbeddingError) as info:
        read_tokenizer(tampered, truncate=False)
    assert TOKENIZER_SHA256 in info.value.message
    assert "restore it from git" in info.value.message


def test_missing_tokenizer_file_is_a_clear_error(tmp_path):
    with pytest.raises(EmbeddingError, match="could not be loaded"):
        read_tokenizer(tmp_path / "absent.json", truncate=True)
