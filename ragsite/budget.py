"""The daily LLM token budget, per client address and per chat session.

A public chat endpoint is free AI to whoever finds it; rate limits bound requests, this
bounds what they cost. Before an LLM answer, `budget_check` refuses a caller that has
spent its day (`LLMBudgetExhausted`, a 429 with `Retry-After` = seconds until 00:00 UTC);
after it, `budget_charge` adds the answer's prompt + completion tokens. The extractive
answerer costs nothing and is never checked or charged.

Counters live in Django's default cache under one key per (scope, who, UTC day), so a
shared cache (Redis) shares them between processes without code changes.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

from .rag.config import get_config
from .rag.exceptions import RateLimited
from .ratelimit import client_key, too_many_requests

BUDGET_EXHAUSTED_MESSAGE = (
    "The daily allowance of AI answers for {scope} is used up. It renews at 00:00 UTC."
)
DAY_S = 86_400
KEY_PREFIX = "ragsite:llm-budget"


class LLMBudgetExhausted(RateLimited):
    """The caller has spent its daily LLM token budget."""

    code = "llm_budget_exhausted"


def seconds_until_tomorrow(now: float | None = None) -> int:
    """Seconds until the next 00:00 UTC (at least 1)."""
    now = time.time() if now is None else now
    return max(1, int(DAY_S - (now % DAY_S)))


def _day(now: float) -> int:
    return int(now // DAY_S)


def _key(scope: str, who: str, now: float) -> str:
    # Hashed: cache keys must be short and safe whatever a session id or address holds.
    digest = hashlib.sha256(who.encode()).hexdigest()[:32]
    return f"{KEY_PREFIX}:{scope}:{_day(now)}:{digest}"


def _limits(client: str, session_id: str | None) -> list[tuple[str, str, int]]:
    """(scope, who, daily limit) for each budget that applies; a limit of 0 is off."""
    limits = [("ip", client, settings.LLM_DAILY_TOKENS_PER_IP)]
    if session_id:
        limits.append(("session", session_id, settings.LLM_DAILY_TOKENS_PER_SESSION))
    return [(scope, who, limit) for scope, who, limit in limits if limit > 0 and who]


def budget_spent(*, scope: str, who: str, now: float | None = None) -> int:
    """Return the tokens charged today to one client address ("ip") or session ("session")."""
    now = time.time() if now is None else now
    return int(cache.get(_key(scope, who, now), 0))


def budget_check(*, client: str, session_id: str | None = None, now: float | None = None) -> None:
    """Raise when the client address or the session has spent today's tokens.

    Raises:
        LLMBudgetExhausted: with `details.retry_after` (seconds until 00:00 UTC).
    """
    now = time.time() if now is None else now
    for scope, who, limit in _limits(client, session_id):
        if budget_spent(scope=scope, who=who, now=now) >= limit:
            label = "this address" if scope == "ip" else "this conversation"
            raise LLMBudgetExhausted(
                BUDGET_EXHAUSTED_MESSAGE.format(scope=label),
                details={"retry_after": seconds_until_tomorrow(now), "scope": scope},
            )


def usage_tokens(usage: Mapping[str, Any] | None) -> int:
    """Return the prompt + completion tokens of an answer's `usage` (0 when unknown)."""
    if not usage:
        return 0
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    if prompt or completion:
        return prompt + completion
    return int(usage.get("total_tokens") or 0)


def budget_charge(
    *, client: str, session_id: str | None = None, tokens: int, now: float | None = None
) -> None:
    """Add `tokens` to today's spending of the client address and of the session."""
    if tokens <= 0:
        return
    now = time.time() if now is None else now
    # Kept a little past midnight so a clock skew between processes cannot revive it.
    timeout = seconds_until_tomorrow(now) + 60
    for scope, who, _ in _limits(client, session_id):
        key = _key(scope, who, now)
        cache.add(key, 0, timeout=timeout)
        try:
            cache.incr(key, tokens)
        except ValueError:  # evicted between add and incr
            cache.set(key, tokens, timeout=timeout)


def budget_charge_answer(*, client: str, session_id: str | None, answer: Mapping[str, Any]) -> int:
    """Charge a finished answer (the `done` data or `stream:false` body); return its tokens.

    Only LLM answers cost anything: `mode` "extractive" is never charged.
    """
    if answer.get("mode") != "llm":
        return 0
    usage = answer.get("usage") or {}
    tokens = usage_tokens(usage)
    if not tokens and not answer.get("uncertain"):
        # A server that reports no usage: estimate (~4 characters a token). An uncertain
        # answer is written without asking the model, so it costs nothing.
        tokens = int(usage.get("context_tokens") or 0) + len(answer.get("answer") or "") // 4
    budget_charge(client=client, session_id=session_id, tokens=tokens)
    return tokens


# --- wiring for the chat view ------------------------------------------------------------


async def budget_gate(request: HttpRequest, *, session_id: str | None) -> HttpResponse | None:
    """Return a 429 when an LLM answer is over budget for this caller, else None.

    Extractive-only deployments (no LLM configured) are never limited by the budget.
    """
    if not get_config().llm_enabled:
        return None
    client = client_key("llm-budget", request)
    try:
        await asyncio.to_thread(budget_check, client=client, session_id=session_id)
    except LLMBudgetExhausted as exc:
        return too_many_requests(
            retry_after=exc.details["retry_after"],
            code=exc.code,
            message=exc.message,
            details=exc.details,
        )
    return None


async def budget_metered(
    events: AsyncIterator[Any],
    *,
    request: HttpRequest,
    session_id: str | None,
) -> AsyncIterator[Any]:
    """Pass the chat stream's typed events (`.name`, `.data()`) through, charging the
    `done` answer before it is sent."""
    client = client_key("llm-budget", request)
    try:
        async for event in events:
            if event.name == "meta":
                session_id = event.data().get("session_id") or session_id
            elif event.name == "done" and event.data().get("mode") == "llm":
                # Only LLM answers cost anything: no thread hop for an extractive one.
                await asyncio.to_thread(
                    budget_charge_answer, client=client, session_id=session_id, answer=event.data()
                )
            yield event
    finally:
        # A reader who leaves closes this generator: close the answer's at once too, so
        # its own clean-up (closing the LLM stream, storing the partial answer) runs now.
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


async def budget_charge_result(request: HttpRequest, result: Mapping[str, Any]) -> None:
    """Charge a `stream: false` answer (meta, sources and done merged)."""
    await asyncio.to_thread(
        budget_charge_answer,
        client=client_key("llm-budget", request),
        session_id=result.get("session_id"),
        answer=result,
    )
