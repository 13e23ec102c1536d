"""The daily LLM token budget per client address and per session (ragsite/budget.py)."""

from __future__ import annotations

import json

import httpx
import pytest

from ragsite.budget import (
    BUDGET_EXHAUSTED_MESSAGE,
    LLMBudgetExhausted,
    budget_charge,
    budget_check,
    budget_spent,
    seconds_until_tomorrow,
)
from tests.test_check_index import index_small_book

pytestmark = pytest.mark.django_db(transaction=True)

CLIENT = "203.0.113.7"
DAY = 86_400


def ask(client, message: str = "What does LiDAR measure?", **extra):
    body = {"message": message, "stream": False, **extra}
    return client.post("/api/chat", body, content_type="application/json", REMOTE_ADDR=CLIENT)


def test_budget_is_per_address_and_per_session_and_per_day(settings):
    settings.LLM_DAILY_TOKENS_PER_IP = 100
    settings.LLM_DAILY_TOKENS_PER_SESSION = 40
    now = 20_000 * DAY + 3_600  # 01:00 UTC
    budget_charge(client=CLIENT, session_id="s1", tokens=40, now=now)
    assert budget_spent(scope="ip", who=CLIENT, now=now) == 40
    budget_check(client=CLIENT, session_id="s2", now=now)  # a fresh session is fine
    with pytest.raises(LLMBudgetExhausted) as spent:
        budget_check(client=CLIENT, session_id="s1", now=now)
    assert spent.value.details == {"retry_after": DAY - 3_600, "scope": "session"}
    budget_charge(client=CLIENT, session_id="s2", tokens=60, now=now)
    with pytest.raises(LLMBudgetExhausted, match="this address"):
        budget_check(client=CLIENT, session_id="s3", now=now)
    # The next UTC day starts afresh.
    budget_check(client=CLIENT, session_id="s1", now=now + DAY)
    assert seconds_until_tomorrow(now) == DAY - 3_600


def test_zero_turns_a_budget_off(settings):
    settings.LLM_DAILY_TOKENS_PER_IP = 0
    settings.LLM_DAILY_TOKENS_PER_SESSION = 0
    budget_charge(client=CLIENT, session_id="s", tokens=10**9)
    budget_check(client=CLIENT, session_id="s")


def test_llm_answers_are_charged_then_refused_with_retry_after(
    client, settings, llm_settings, fake_openai, tmp_path
):
    index_small_book(tmp_path, settings)
    settings.LLM_DAILY_TOKENS_PER_IP = 50
    settings.LLM_DAILY_TOKENS_PER_SESSION = 0
    settings.CHAT_RATE_LIMIT = "100/d"
    first = ask(client)
    assert first.status_code == 200
    answer = first.json()
    assert answer["mode"] == "llm"
    charged = answer["usage"]["prompt_tokens"] + answer["usage"]["completion_tokens"]
    assert charged > 50  # the fake counts the prompt's words: one answer spends the day
    assert budget_spent(scope="ip", who=CLIENT) == charged
    calls = len(fake_openai.chat_requests)

    refused = ask(client, "And the IMU?")
    assert refused.status_code == 429
    retry_after = int(refused["Retry-After"])
    assert 1 <= retry_after <= DAY
    assert refused.json() == {
        "error": {
            "code": "llm_budget_exhausted",
            "message": BUDGET_EXHAUSTED_MESSAGE.format(scope="this address"),
            "details": {"retry_after": retry_after, "scope": "ip"},
        }
    }
    assert len(fake_openai.chat_requests) == calls  # the model was not asked
    # Another reader is not affected.
    other = client.post(
        "/api/chat",
        {"message": "What does LiDAR measure?", "stream": False},
        content_type="application/json",
        REMOTE_ADDR="198.51.100.9",
    )
    assert other.status_code == 200


def test_streamed_answers_are_charged_per_session(
    live_server, settings, llm_settings, fake_openai, tmp_path
):
    index_small_book(tmp_path, settings)
    settings.LLM_DAILY_TOKENS_PER_IP = 10**6
    settings.LLM_DAILY_TOKENS_PER_SESSION = 10
    settings.CHAT_RATE_LIMIT = "100/d"
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        streamed = http.post("/api/chat", json={"message": "What does LiDAR measure?"})
        assert streamed.status_code == 200
        assert "event: done" in streamed.text
        meta = next(line for line in streamed.text.splitlines() if '"session_id"' in line)
        session_id = json.loads(meta.removeprefix("data:"))["session_id"]
        assert budget_spent(scope="session", who=session_id) > 10
        again = http.post("/api/chat", json={"message": "And the IMU?", "session_id": session_id})
        assert again.status_code == 429
        assert again.json()["error"]["details"]["scope"] == "session"
        fresh = http.post("/api/chat", json={"message": "And the IMU?", "stream": False})
        assert fresh.status_code == 200  # a new session


def test_extractive_answers_are_never_limited(client, settings, tmp_path):
    index_small_book(tmp_path, settings)
    settings.LLM_DAILY_TOKENS_PER_IP = 1
    settings.CHAT_RATE_LIMIT = "100/d"
    budget_charge(client=CLIENT, tokens=1000)
    for _ in range(3):
        response = ask(client)
        assert response.status_code == 200
        assert response.json()["mode"] == "extractive"
    assert budget_spent(scope="ip", who=CLIENT) == 1000  # charged nothing more
