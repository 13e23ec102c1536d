"""POST /api/chat and /api/feedback as the widget sees them: validation, limits, the
extractive (default) answer, sessions, and the stream:false shape."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from chat.models import Conversation, Feedback, Message
from chat.prompts import UNCERTAIN_ANSWER
from chat.services.conversations import MESSAGE_NOT_FOUND_MESSAGE
from ragsite.http import INVALID_JSON_MESSAGE
from ragsite.rag.llm import EXTRACTIVE_NOTICE
from ragsite.ratelimit import RATE_LIMITED_MESSAGE
from tests.chat.conftest import SSEReader, by_name, chat_events

pytestmark = pytest.mark.django_db(transaction=True)


async def post_chat(async_client, body, **extra):
    return await async_client.post(
        "/api/chat", data=json.dumps(body), content_type="application/json", **extra
    )


async def stream_events(async_client, body):
    response = await post_chat(async_client, body)
    assert response.status_code == 200
    reader = SSEReader()
    events = []
    async for chunk in response.streaming_content:
        events.extend(reader.feed(chunk.decode("utf-8")))
    return response, events


# --- before the stream: plain JSON errors ---------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"message": ""}, "message"),
        ({"message": "   "}, "message"),
        ({"message": "x" * 2001}, "message"),
        ({}, "message"),
        ({"message": 42}, "message"),
        ({"message": "Hi", "stream": "yes"}, "stream"),
        ({"message": "Hi", "selection": "y" * 5001}, "selection"),
        ({"message": "Hi", "session_id": 7}, "session_id"),
    ],
)
async def test_invalid_requests_are_400_json(async_client, body, field):
    response = await post_chat(async_client, body)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "bad_request"
    assert field in [item["field"] for item in error["details"]["fields"]]
    assert await Message.objects.acount() == 0


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", '"just a string"'])
async def test_non_json_body_is_400(async_client, raw):
    response = await async_client.post("/api/chat", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == INVALID_JSON_MESSAGE


async def test_get_is_405(async_client):
    response = await async_client.get("/api/chat")
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"


async def test_over_the_rate_limit_is_429_with_retry_after(async_client, settings, small_book):
    settings.CHAT_RATE_LIMIT = "2/m"
    for _ in range(2):
        response = await post_chat(async_client, {"message": "What is LiDAR?", "stream": False})
        assert response.status_code == 200
    limited = await post_chat(async_client, {"message": "What is LiDAR?"})
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) >= 1
    assert limited["Content-Type"] == "application/json"  # never a stream
    assert limited.json()["error"] == {
        "code": "rate_limited",
        "message": RATE_LIMITED_MESSAGE,
        "details": {"retry_after": int(limited["Retry-After"])},
    }


async def test_chat_needs_no_csrf_token(small_book):
    from django.test import AsyncClient

    strict = AsyncClient(enforce_csrf_checks=True)
    response = await post_chat(strict, {"message": "What is LiDAR?", "stream": False})
    assert response.status_code == 200


# --- the extractive answer (no LLM configured: the default) ---------------------------------


async def test_extractive_stream_has_the_events_of_api_md(async_client, small_book):
    response, events = await stream_events(
        async_client, {"message": "How does LiDAR measure distance?"}
    )
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    assert response["X-Accel-Buffering"] == "no"

    names = [event.event for event in events]
    assert names[:2] == ["meta", "sources"]
    assert names[-1] == "done"
    assert set(names[2:-1]) == {"token"}

    grouped = by_name(events)
    [meta], [sources], [done] = grouped["meta"], grouped["sources"], grouped["done"]
    assert set(meta) == {"session_id", "message_id", "request_id"}
    first = sources["sources"][0]
    assert set(first) == {"n", "title", "heading", "url", "path", "score", "snippet"}
    assert first["n"] == 1
    assert first["heading"] == "LiDAR"
    assert first["url"] == "https://book.example/docs/part-1/chapter-2-sensors#lidar"

    # The tokens are the answer; its citations point at sources the reader was shown.
    assert "".join(token["text"] for token in grouped["token"]) == done["answer"]
    # Still streamed, but a sentence or so per event rather than one event per word.
    assert 1 < len(grouped["token"]) < len(done["answer"].split()) / 4
    # One notice, not two: the mode tells the widget, which shows its own note.
    assert EXTRACTIVE_NOTICE not in done["answer"]
    assert "laser pulses" in done["answer"]
    numbers = {source["n"] for source in sources["sources"]}
    assert done["citations"]
    assert set(done["citations"]) <= numbers
    for n in done["citations"]:
        assert f"[{n}]" in done["answer"]
    assert done["mode"] == "extractive"
    assert done["uncertain"] is False
    assert 2 <= len(done["follow_ups"]) <= 3
    assert all(question.endswith("?") for question in done["follow_ups"])
    assert isinstance(done["usage"], dict)

    message = await Message.objects.aget(message_id=meta["message_id"])
    assert message.status == Message.Status.COMPLETE
    assert message.answer == done["answer"]
    assert message.citations == done["citations"]
    assert message.sources == sources["sources"]
    assert message.latency_ms is not None
    assert message.ttft_ms is not None


async def test_extractive_answer_streams_over_http(live_server, small_book):
    # The default mode, end to end: uvicorn, the ASGI handler, a real HTTP client.
    response, events = await chat_events(live_server.url, {"message": "What is an IMU?"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    grouped = by_name(events)
    assert [event.event for event in events][:2] == ["meta", "sources"]
    assert grouped["sources"][0]["sources"][0]["heading"] == "Inertial Measurement Units"
    [done] = grouped["done"]
    assert done["mode"] == "extractive"
    assert "accelerometers and gyroscopes" in done["answer"]
    assert done["citations"][0] == 1


async def test_stream_false_returns_one_json_object(async_client, small_book):
    response = await post_chat(
        async_client, {"message": "What is a zero moment point?", "stream": False}
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {
        "session_id", "message_id", "request_id", "sources", "answer", "citations",
        "uncertain", "follow_ups", "mode", "usage",
    }  # fmt: skip
    assert body["sources"][0]["heading"] == "Zero Moment Point"
    assert "[1]" in body["answer"]
    assert body["mode"] == "extractive"


async def test_out_of_book_question_is_uncertain_and_logged_as_unanswered(async_client, small_book):
    response = await post_chat(
        async_client, {"message": "How do I bake sourdough bread?", "stream": False}
    )
    body = response.json()
    assert body["uncertain"] is True
    assert body["answer"].startswith(UNCERTAIN_ANSWER)
    assert body["citations"] == []
    message = await Message.objects.aget(message_id=body["message_id"])
    assert message.uncertain is True


async def test_uncertain_answer_offers_the_closest_sections(async_client, small_book, settings):
    settings.RETRIEVAL_SCORE_FLOOR = 0.85  # nothing in the small book is that close
    body = (
        await post_chat(
            async_client, {"message": "How does LiDAR measure distance?", "stream": False}
        )
    ).json()
    assert body["uncertain"] is True
    assert "LiDAR" in body["answer"]  # the nearest section is named
    assert body["sources"][0]["heading"] == "LiDAR"
    assert body["follow_ups"]


async def test_selection_is_source_one(async_client, small_book):
    selection = "the estimate drifts over time without correction"
    body = (
        await post_chat(
            async_client,
            {"message": "Why does this happen?", "selection": selection, "stream": False},
        )
    ).json()
    first = body["sources"][0]
    assert first["n"] == 1
    assert first["title"] == "Your selection"
    assert first["url"] is None
    assert first["snippet"] == selection
    # The highlighted words come from the IMU section: retrieval adds it as context and
    # the selection is placed on its page.
    assert first["path"] == "part-1/chapter-2-sensors.mdx"
    assert "Inertial Measurement Units" in [s["heading"] for s in body["sources"][1:]]
    assert body["uncertain"] is False
    message = await Message.objects.aget(message_id=body["message_id"])
    assert message.selection == selection


# --- conversation memory -----------------------------------------------------------------------


async def test_follow_up_in_a_session_searches_with_its_topic(async_client, small_book):
    first = (
        await post_chat(
            async_client, {"message": "How does LiDAR measure distance?", "stream": False}
        )
    ).json()
    second = (
        await post_chat(
            async_client,
            {"message": "what about its cost?", "session_id": first["session_id"], "stream": False},
        )
    ).json()
    assert second["session_id"] == first["session_id"]
    message = await Message.objects.aget(message_id=second["message_id"])
    assert "LiDAR" in message.rewritten_query
    assert "cost" in message.rewritten_query
    assert second["sources"][0]["heading"] in {"LiDAR > Cost and trade-offs", "LiDAR"}
    assert "LiDAR > Cost and trade-offs" in [s["heading"] for s in second["sources"]]
    assert "thousand dollars" in second["answer"]


async def test_unknown_or_expired_session_starts_a_new_one(async_client, small_book, settings):
    settings.CHAT_SESSION_IDLE_MINUTES = 30
    first = (await post_chat(async_client, {"message": "What is LiDAR?", "stream": False})).json()
    conversation = await Conversation.objects.aget(session_id=first["session_id"])

    fresh = (
        await post_chat(
            async_client,
            {"message": "What is an IMU?", "session_id": first["session_id"], "stream": False},
        )
    ).json()
    assert fresh["session_id"] == first["session_id"]  # still active

    conversation.last_active_at = timezone.now() - timedelta(minutes=31)
    await conversation.asave(update_fields=["last_active_at"])
    expired = (
        await post_chat(
            async_client,
            {"message": "what about its cost?", "session_id": first["session_id"], "stream": False},
        )
    ).json()
    assert expired["session_id"] != first["session_id"]
    message = await Message.objects.aget(message_id=expired["message_id"])
    assert message.rewritten_query == "what about its cost?"  # no memory of LiDAR

    unknown = (
        await post_chat(
            async_client,
            {"message": "What is LiDAR?", "session_id": "not-a-session", "stream": False},
        )
    ).json()
    assert unknown["session_id"] not in {first["session_id"], expired["session_id"]}
    assert await Conversation.objects.acount() == 3


# --- feedback ------------------------------------------------------------------------------------


async def post_feedback(async_client, body):
    return await async_client.post(
        "/api/feedback", data=json.dumps(body), content_type="application/json"
    )


async def test_feedback_is_stored_and_a_second_vote_replaces_the_first(async_client, small_book):
    answer = (await post_chat(async_client, {"message": "What is LiDAR?", "stream": False})).json()
    response = await post_feedback(
        async_client, {"message_id": answer["message_id"], "rating": "up"}
    )
    assert response.status_code == 204
    assert response.content == b""
    response = await post_feedback(
        async_client,
        {"message_id": answer["message_id"], "rating": "down", "comment": "Too short."},
    )
    assert response.status_code == 204
    feedback = await Feedback.objects.select_related("message").aget()
    assert str(feedback.message.message_id) == answer["message_id"]
    assert feedback.rating == "down"
    assert feedback.comment == "Too short."


async def test_feedback_for_an_unknown_message_is_404(async_client):
    for message_id in ("00000000-0000-0000-0000-000000000000", "nope"):
        response = await post_feedback(async_client, {"message_id": message_id, "rating": "up"})
        assert response.status_code == 404
        assert response.json()["error"]["message"] == MESSAGE_NOT_FOUND_MESSAGE


@pytest.mark.parametrize(
    "body",
    [
        {"rating": "up"},
        {"message_id": "00000000-0000-0000-0000-000000000000", "rating": "meh"},
        {
            "message_id": "00000000-0000-0000-0000-000000000000",
            "rating": "up",
            "comment": "c" * 2001,
        },
    ],
)
async def test_invalid_feedback_is_400(async_client, body):
    response = await post_feedback(async_client, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


async def test_feedback_get_is_405(async_client):
    response = await async_client.get("/api/feedback")
    assert response.status_code == 405
