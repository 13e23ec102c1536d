"""Query rewriting: turn a follow-up ("what about its cost?") into a stand-alone query.

Retrieval sees one query, not the conversation, so a follow-up must carry its topic.
With a language model the model rewrites it; without one (or when it fails) a
deterministic rule prepends the key terms of the conversation's topic.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from chat.prompts import Turn, rewrite_messages
from ragsite.rag import providers
from ragsite.rag.exceptions import LLMError
from ragsite.rag.sparse import STOPWORDS
from ragsite.rag.types import ChatModel

logger = logging.getLogger(__name__)

# Words that make a message lean on the previous turn.
ANAPHORA = frozenset(
    """it its it's itself that this these those they them their theirs there he she
    his her one ones same also else another other former latter above previous""".split()
)
FOLLOW_UP_OPENERS = (
    "what about",
    "how about",
    "and ",
    "but ",
    "also ",
    "why",
    "how so",
    "what else",
    "tell me more",
    "more about",
    "more on",
    "same for",
    "what if",
    "then ",
)
# Question scaffolding that says nothing about the topic.
FILLER = frozenset(
    """how what why which who whom whose when where does do did can could would should
    is are was were be explain describe tell me please book say says said mean means
    work works working use used using give show list difference between example examples
    chapter section page thing things way ways""".split()
)
SHORT_MESSAGE_TERMS = 2  # a message with this few topic terms cannot stand alone
MAX_TOPIC_TERMS = 6
MAX_REWRITE_CHARS = 300
_TERM_RE = re.compile(r"[^\W_][\w+#.\-']*[\w+#]|[^\W_]")


def key_terms(text: str) -> list[str]:
    """Return the topic words of a text in order, original case, without repeats."""
    terms: list[str] = []
    seen: set[str] = set()
    for word in _TERM_RE.findall(text):
        low = word.lower().strip("'")
        if low in STOPWORDS or low in FILLER or low in seen or len(low) < 2:
            continue
        seen.add(low)
        terms.append(word)
    return terms


def looks_like_follow_up(message: str) -> bool:
    """True when a message leans on the conversation (pronouns, "what about", very short)."""
    low = message.lower().strip()
    words = set(re.findall(r"[\w']+", low))
    if low.startswith(FOLLOW_UP_OPENERS) or words & ANAPHORA:
        return True
    return len(key_terms(message)) <= SHORT_MESSAGE_TERMS


def _topic_terms(history: Sequence[Turn]) -> list[str]:
    """Key terms of the latest turn that set a topic (not itself a follow-up)."""
    for turn in reversed(history):
        if not looks_like_follow_up(turn.question):
            return key_terms(turn.question)[:MAX_TOPIC_TERMS]
    latest = history[-1]
    terms = key_terms(latest.rewritten_query or latest.question)
    if not terms and latest.top_heading:
        terms = key_terms(latest.top_heading.split(" > ")[-1])
    return terms[:MAX_TOPIC_TERMS]


def query_rewrite_rule(*, message: str, history: Sequence[Turn]) -> str:
    """Prepend the conversation's topic terms to a follow-up; leave other messages as is."""
    if not history or not looks_like_follow_up(message):
        return message
    present = {term.lower() for term in key_terms(message)}
    topic = [term for term in _topic_terms(history) if term.lower() not in present]
    if not topic:
        return message
    return f"{' '.join(topic)} {message}"


async def query_rewrite(
    *, message: str, history: Sequence[Turn], llm: ChatModel | None = None
) -> str:
    """Return a stand-alone search query for `message` given the recent turns.

    Args:
        message: the reader's new message.
        history: the recent exchanges, oldest first.
        llm: the chat model; default the configured one. An extractive model, or an
            LLMError, means the deterministic rule is used.

    Returns:
        The query retrieval should search for (the message itself without history).
    """
    if not history:
        return message
    llm = llm or providers.get_chat_model()
    if llm.provider == "extractive":
        return query_rewrite_rule(message=message, history=history)
    try:
        rewritten = await llm.complete(
            rewrite_messages(message=message, history=history), max_tokens=64
        )
    except LLMError as exc:
        logger.warning("query rewriting by the LLM failed, using the rule: %s", exc)
        return query_rewrite_rule(message=message, history=history)
    rewritten = rewritten.strip().strip("\"'").strip()
    if not rewritten or len(rewritten) > MAX_REWRITE_CHARS:
        return query_rewrite_rule(message=message, history=history)
    return rewritten.splitlines()[0]
