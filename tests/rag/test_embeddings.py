"""Embedders: the real packaged ONNX model, and the real openai SDK against the fake server."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from ragsite.rag import providers
from ragsite.rag.embeddings import (
    LOCAL_MODEL_SHA256,
    OPENAI_BATCH_SIZE,
    LocalEmbedder,
    OpenAIEmbedder,
)
from ragsite.rag.exceptions import EmbeddingError
from ragsite.rag.tokens import MAX_MODEL_TOKENS, count_tokens
from tests.fake_openai import fake_embedding

# These tests judge the model itself, so they bypass the session's embedding memo.
pytestmark = pytest.mark.no_embedding_memo

QUESTION = "How does a robot measure the distance to a wall?"
PARAPHRASE = "A lidar sensor tells the robot how far away the wall is."
UNRELATED = "Bake the bread for forty minutes until the crust is golden."


@pytest.fixture(scope="module")
def local() -> LocalEmbedder:
    return LocalEmbedder.default()


def cosine(a, b) -> float:
    return float(np.dot(a, b))


# --- local model ------------------------------------------------------------------


def test_local_vectors_are_384_d_unit_length(local):
    vectors = local.embed_sync([QUESTION, PARAPHRASE, ""])
    assert local.dimension == 384
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_local_paraphrase_scores_above_unrelated_sentence(local):
    question, paraphrase, unrelated = local.embed_sync([QUESTION, PARAPHRASE, UNRELATED])
    assert cosine(question, paraphrase) > 0.4
    assert cosine(question, paraphrase) > cosine(question, unrelated) + 0.3


def test_local_batch_equals_one_by_one(local, settings):
    settings.EMBEDDING_BATCH_SIZE = 2  # several batches of different padded lengths
    texts = [UNRELATED, "Short.", QUESTION, PARAPHRASE, "A humanoid walks on two legs."]
    together = local.embed_sync(texts)
    alone = [local.embed_sync([text])[0] for text in texts]
    for batched, single in zip(together, alone, strict=True):
        assert cosine(batched, single) > 0.999


def test_local_text_longer_than_the_model_window_still_embeds(local):
    head = " ".join(["The robot walks through the lab and avoids every obstacle."] * 30)
    assert count_tokens(head) > MAX_MODEL_TOKENS
    first, second = local.embed_sync([head + " Cats.", head + " Completely different ending."])
    assert len(first) == 384
    # Only the first 256 tokens are seen, so the different endings do not matter.
    assert cosine(first, second) > 0.9999


async def test_local_async_embed_matches_sync(local):
    assert np.allclose(await local.embed([QUESTION]), local.embed_sync([QUESTION]), atol=1e-6)
    assert await local.embed([]) == []


def test_local_default_survives_provider_reset(settings):
    first = providers.get_embedder()
    settings.RETRIEVAL_K = 7  # any settings change resets the providers
    assert providers.get_embedder() is first is LocalEmbedder.default()


def test_altered_model_file_is_refused(tmp_path):
    tampered = tmp_path / "model.onnx"
    tampered.write_bytes(b"not the model")
    with pytest.raises(EmbeddingError) as info:
        LocalEmbedder(model_path=tampered)
    assert LOCAL_MODEL_SHA256 in info.value.message
    assert "uv sync" in info.value.message


def test_single_string_is_rejected(local):
    with pytest.raises(TypeError):
        local.embed_sync("one text, not a list")


# --- OpenAI-compatible API (fake server) ------------------------------------------


@pytest.fixture
def openai_embedding_settings(settings, fake_openai):
    settings.EMBEDDING_PROVIDER = "openai"
    settings.OPENAI_BASE_URL = fake_openai.url
    settings.OPENAI_API_KEY = ""  # a base URL alone must be enough (local servers)
    settings.OPENAI_EMBEDDING_MODEL = "fake-embedding"
    settings.OPENAI_EMBEDDING_DIMENSIONS = 0
    settings.OPENAI_MAX_RETRIES = 1
    settings.OPENAI_TIMEOUT = 2.0
    return settings


@pytest.fixture
async def openai_embedder(openai_embedding_settings):
    """Return the providers' embedder (call it after changing settings); closes its clients."""
    used = []

    def get():
        embedder = providers.get_embedder()
        used.append(embedder)
        return embedder

    yield get
    for embedder in used:
        await embedder.aclose()


async def test_openai_embeds_in_batches_in_order(fake_openai, openai_embedder):
    embedder = openai_embedder()
    assert isinstance(embedder, OpenAIEmbedder)
    texts = [f"passage number {i}" for i in range(OPENAI_BATCH_SIZE * 2 + 5)]

    vectors = await embedder.embed(texts)

    assert [len(body["input"]) for body in fake_openai.embedding_requests] == [128, 128, 5]
    # The SDK asks for base64 by default; decoding gives back the server's floats.
    assert {body["encoding_format"] for body in fake_openai.embedding_requests} == {"base64"}
    for text, vector in zip(texts, vectors, strict=True):
        assert np.allclose(vector, fake_embedding(text, 64), atol=1e-6)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


def test_openai_sync_embed_and_dimension_probe(fake_openai, openai_embedder):
    embedder = openai_embedder()
    # An unknown model without OPENAI_EMBEDDING_DIMENSIONS: one probe request.
    assert embedder.dimension == 64
    assert len(fake_openai.embedding_requests) == 1
    vectors = embedder.embed_sync(["alpha", "beta"])
    assert np.allclose(vectors[0], fake_embedding("alpha", 64), atol=1e-6)
    assert embedder.embed_sync([]) == []
    assert len(fake_openai.embedding_requests) == 2


async def test_openai_sync_embed_works_from_a_worker_thread(openai_embedder):
    embedder = openai_embedder()
    vectors = await asyncio.to_thread(embedder.embed_sync, ["alpha"])
    assert np.allclose(vectors[0], fake_embedding("alpha", 64), atol=1e-6)


async def test_openai_configured_dimensions_are_requested(
    openai_embedding_settings, fake_openai, openai_embedder
):
    openai_embedding_settings.OPENAI_EMBEDDING_MODEL = "text-embedding-3-small"
    openai_embedding_settings.OPENAI_EMBEDDING_DIMENSIONS = 32
    embedder = openai_embedder()
    assert embedder.dimension == 32
    assert fake_openai.embedding_requests == []  # known without asking
    (vector,) = await embedder.embed(["alpha"])
    assert len(vector) == 32
    assert fake_openai.embedding_requests[0]["dimensions"] == 32


async def test_openai_unexpected_dimension_is_an_error(openai_embedding_settings, openai_embedder):
    openai_embedding_settings.OPENAI_EMBEDDING_MODEL = "text-embedding-3-small"  # 1536 expected
    embedder = openai_embedder()
    with pytest.raises(EmbeddingError, match="OPENAI_EMBEDDING_DIMENSIONS"):
        await embedder.embed(["alpha"])


async def test_openai_server_errors_are_retried_then_reported(fake_openai, openai_embedder):
    embedder = openai_embedder()
    fake_openai.fail_next(1)
    (vector,) = await embedder.embed(["recovers after one retry"])
    assert len(vector) == 64

    fake_openai.requests = []
    fake_openai.fail_next(5)
    with pytest.raises(EmbeddingError, match="embedding API failed"):
        await embedder.embed(["still failing"])
    assert len(fake_openai.embedding_requests) == 2  # OPENAI_MAX_RETRIES=1, plus the first try


@pytest.mark.no_embedding_memo
def test_an_ingestion_gets_a_session_of_its_own_with_the_arena():
    from ragsite.rag.embeddings import LocalEmbedder

    serving = providers.get_embedder()
    ingesting = providers.get_ingestion_embedder()
    assert type(serving) is type(ingesting) is LocalEmbedder
    assert ingesting is not providers.get_ingestion_embedder()  # one per run, dropped after
    assert ingesting._session is not serving._session
    text = ["Each value in Rust has an owner."]
    [one], [other] = serving.embed_sync(text), ingesting.embed_sync(text)
    same = sum(a * b for a, b in zip(one, other, strict=True))
    assert same > 0.9999  # the arena changes memory, never the vectors
