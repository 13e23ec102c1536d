"""A chat stream's `meta` carries the request id of the access log, and the answer is
counted in /metrics (time to sources, time to first token, outcome)."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ragsite.observability import REQUEST_ID_HEADER
from tests.chat.conftest import by_name, chat_events


def _count(name: str, text: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


async def test_a_chat_stream_carries_the_request_id_and_is_timed(small_book, live_server):
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        before = (await http.get("/metrics")).text
    response, events = await chat_events(
        live_server.url, {"message": "How does an IMU measure rotation?"}
    )
    meta = by_name(events)["meta"][0]
    assert meta["request_id"] == response.headers[REQUEST_ID_HEADER]
    assert len(meta["request_id"]) == 32
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        after = (await http.get("/metrics")).text
    for name in (
        "ragsite_chat_time_to_sources_seconds_count",
        "ragsite_chat_time_to_first_token_seconds_count",
        "ragsite_chat_answers_total",
        "ragsite_retrieval_duration_seconds_count",
    ):
        assert _count(name, after) - _count(name, before) == 1, name


async def test_a_collected_answer_carries_the_request_id(small_book, live_server):
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
        response = await http.post(
            "/api/chat",
            json={"message": "How does an IMU measure rotation?", "stream": False},
            headers={REQUEST_ID_HEADER: "support-case-0042"},
        )
    assert response.status_code == 200
    assert response.json()["request_id"] == "support-case-0042"
