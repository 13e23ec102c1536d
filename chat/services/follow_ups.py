"""Follow-up questions offered under an answer: from the LLM, else from source headings."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence

from chat import prompts
from ragsite.rag.exceptions import LLMError
from ragsite.rag.types import ChatModel, Source

from .sources import SELECTION_ID

logger = logging.getLogger(__name__)

MAX_FOLLOW_UPS = 3
FOLLOW_UP_MAX_CHARS = 120
FOLLOW_UP_MAX_TOKENS = 120
# Headings that name a part of every chapter rather than a topic of the book.
GENERIC_HEADINGS = frozenset(
    {
        "summary",
        "introduction",
        "overview",
        "conclusion",
        "conclusions",
        "further reading",
        "references",
        "exercises",
        "knowledge check",
        "what you'll learn",
        "what you will learn",
        "next steps",
        "best practices",
        "key takeaways",
        "review questions",
        "prerequisites",
        "conceptual questions",
        "practical application",
        "critical thinking",
    }
)


def _topic(source: Source) -> str:
    """The most specific part of a source's heading path, or its page title."""
    heading = source.chunk.heading.split(" > ")[-1].strip() if source.chunk.heading else ""
    heading = re.sub(r"^(chapter|part|section)\s+\d+[:.]?\s*", "", heading, flags=re.IGNORECASE)
    return heading or source.chunk.title


def follow_ups_from_headings(*, sources: Sequence[Source], question: str) -> list[str]:
    """Suggest "What does the book say about <heading>?" for distinct source sections.

    Topics the question already names come last: they are the least new to the reader.
    """
    asked = question.lower()
    fresh: list[str] = []
    named: list[str] = []
    seen: set[str] = set()
    for source in sources:
        if source.chunk.id == SELECTION_ID:
            continue
        topic = _topic(source)
        key = topic.lower().strip()
        if not key or key in seen or key in GENERIC_HEADINGS:
            continue
        seen.add(key)
        (named if key in asked else fresh).append(prompts.FOLLOW_UP_TEMPLATE.format(topic=topic))
    return (fresh + named)[:MAX_FOLLOW_UPS]


def _parse_follow_ups(text: str) -> list[str]:
    questions: list[str] = []
    for line in text.splitlines():
        line = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", line).strip().strip("\"'")
        if line.endswith("?") and 3 < len(line) <= FOLLOW_UP_MAX_CHARS and line not in questions:
            questions.append(line)
    return questions[:MAX_FOLLOW_UPS]


async def follow_ups_suggest(
    *,
    question: str,
    answer: str,
    sources: Sequence[Source],
    llm: ChatModel,
    timeout_s: float | None = None,
) -> list[str]:
    """Return 2-3 short questions the sources can answer (LLM, else from headings).

    An LLM that fails, answers garbage or takes longer than `timeout_s` seconds gets
    the headings' suggestions instead: follow-ups never hold up `done` for long.
    """
    fallback = follow_ups_from_headings(sources=sources, question=question)
    if llm.provider == "extractive" or not sources:
        return fallback
    try:
        async with asyncio.timeout(timeout_s):
            text = await llm.complete(
                prompts.follow_up_messages(question=question, answer=answer, sources=sources),
                max_tokens=FOLLOW_UP_MAX_TOKENS,
            )
    except (LLMError, TimeoutError) as exc:
        logger.info("follow-up suggestions by the LLM failed, using headings: %r", exc)
        return fallback
    except Exception:  # garbage from the model (a body the SDK cannot parse) is an outage
        logger.warning("follow-up suggestions by the LLM were unusable", exc_info=True)
        return fallback
    suggested = _parse_follow_ups(text if isinstance(text, str) else "")
    return suggested if len(suggested) >= 2 else fallback
