"""Retrieval and query rewriting on the small book: what the reader's question finds."""

from __future__ import annotations

import dataclasses

import pytest

from chat.prompts import Turn
from chat.services import book_search, hits_collapse, query_rewrite, query_rewrite_rule
from chat.services.rewriting import key_terms, looks_like_follow_up
from ragsite.rag import providers
from ragsite.rag.llm import ExtractiveChatModel
from ragsite.rag.types import Hit

LIDAR_TURN = Turn(question="How does LiDAR measure distance?", answer="By timing laser pulses [1].")


# --- rewriting (the deterministic rule) ----------------------------------------------------


def test_follow_up_gets_the_topic_of_the_previous_question():
    query = query_rewrite_rule(message="what about its cost?", history=[LIDAR_TURN])
    assert "LiDAR" in query
    assert "cost" in query


def test_stand_alone_question_is_left_alone():
    message = "How does a PID controller reduce overshoot?"
    assert query_rewrite_rule(message=message, history=[LIDAR_TURN]) == message


def test_chained_follow_ups_keep_the_original_topic():
    history = [LIDAR_TURN, Turn(question="what about its cost?", answer="Thousands [2].")]
    query = query_rewrite_rule(message="and its weight?", history=history)
    assert query.startswith("LiDAR")
    assert "cost" not in query


def test_without_history_nothing_is_rewritten():
    assert query_rewrite_rule(message="what about its cost?", history=[]) == "what about its cost?"


@pytest.mark.parametrize(
    ("message", "follow_up"),
    [
        ("what about its cost?", True),
        ("Why?", True),
        ("And the IMU?", True),
        ("How do they compare?", True),
        ("How does the Kalman filter fuse IMU and wheel odometry?", False),
    ],
)
def test_follow_up_detection(message, follow_up):
    assert looks_like_follow_up(message) is follow_up


def test_key_terms_keep_case_and_drop_scaffolding():
    assert key_terms("How does the ROS 2 launch system work?") == ["ROS", "launch", "system"]


async def test_extractive_model_rewrites_by_rule():
    query = await query_rewrite(
        message="what about its cost?", history=[LIDAR_TURN], llm=ExtractiveChatModel()
    )
    assert query == query_rewrite_rule(message="what about its cost?", history=[LIDAR_TURN])


# --- search ----------------------------------------------------------------------------------


async def test_search_finds_the_section_that_answers(small_book):
    retrieval = await book_search(query="How does LiDAR measure distance?", k=3)
    assert retrieval.supported
    top = retrieval.hits[0].chunk
    assert top.heading == "LiDAR"
    assert top.url == "https://book.example/docs/part-1/chapter-2-sensors#lidar"
    assert len(retrieval.hits) <= 3


async def test_follow_up_rewritten_by_rule_finds_the_cost_section(small_book):
    query = query_rewrite_rule(message="what about its cost?", history=[LIDAR_TURN])
    retrieval = await book_search(query=query, k=2)
    assert "LiDAR > Cost and trade-offs" in [hit.chunk.heading for hit in retrieval.hits]


async def test_out_of_book_question_finds_no_support(small_book):
    retrieval = await book_search(query="How do I bake sourdough bread?", k=5)
    assert not retrieval.supported
    assert retrieval.hits == []
    # Nothing is near enough to offer either: cooking is nowhere in a robotics book.
    assert retrieval.closest == []


async def test_floor_is_a_setting(small_book, settings):
    settings.RETRIEVAL_SCORE_FLOOR = 0.85  # above any cosine here
    retrieval = await book_search(query="How does LiDAR measure distance?", k=3)
    assert not retrieval.supported
    assert retrieval.closest[0].chunk.heading == "LiDAR"  # still offered as the closest


async def test_results_are_distinct(small_book):
    retrieval = await book_search(query="LiDAR sensors", k=10, score_floor=0.0)
    ids = [hit.chunk.id for hit in retrieval.hits]
    assert len(ids) == len(set(ids))


def test_collapse_drops_neighbouring_pieces_and_repeated_text(small_book_index):
    chunks, _ = small_book_index
    lidar, cost, imu = chunks[0], chunks[1], chunks[2]
    second_piece = dataclasses.replace(
        lidar,
        id="piece-2",
        position=lidar.position + 1,
        body=lidar.body + " It also works at night.",
    )
    copy_elsewhere = dataclasses.replace(imu, id="copy", path="appendix.mdx", heading="IMU recap")
    hits = [
        Hit(lidar, 0.8),
        Hit(second_piece, 0.7),
        Hit(cost, 0.6),
        Hit(imu, 0.5),
        Hit(copy_elsewhere, 0.4),
    ]
    kept = [hit.chunk.id for hit in hits_collapse(hits)]
    assert kept == [lidar.id, cost.id, imu.id]


# --- GET /api/search ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_search_endpoint_returns_results_as_api_md(client, small_book):
    response = client.get("/api/search", {"q": "What is the zero moment point?", "k": "2"})
    assert response.status_code == 200
    body = response.json()
    assert body["query"] == "What is the zero moment point?"
    assert 1 <= len(body["results"]) <= 2
    first = body["results"][0]
    assert set(first) == {"id", "score", "text", "title", "heading", "path", "url"}
    assert first["heading"] == "Zero Moment Point"
    assert first["path"] == "part-3/chapter-10-balance.mdx"
    assert first["url"].endswith("#zero-moment-point")
    assert first["text"].startswith("Chapter 10: Balance and Locomotion > Zero Moment Point")
    assert 0 < first["score"] <= 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": ""},
        {"q": "   "},
        {"q": "lidar", "k": "0"},
        {"q": "lidar", "k": "51"},
        {"q": "lidar", "k": "many"},
    ],
)
def test_search_endpoint_rejects_bad_parameters(client, params):
    response = client.get("/api/search", params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


@pytest.mark.django_db
def test_search_endpoint_is_get_only(client):
    response = client.post("/api/search", {"q": "lidar"})
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.django_db
def test_search_endpoint_is_rate_limited(client, settings, small_book):
    settings.SEARCH_RATE_LIMIT = "2/m"
    statuses = [client.get("/api/search", {"q": "lidar"}).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    limited = client.get("/api/search", {"q": "lidar"})
    assert int(limited["Retry-After"]) >= 1
    assert limited.json()["error"]["code"] == "rate_limited"


def test_store_is_the_providers_one(small_book):
    # The fixture indexed into the store every view uses, not a private one.
    assert providers.get_store().count() == len(small_book)
