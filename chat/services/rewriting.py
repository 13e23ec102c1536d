"""Query rewriting: turn a follow-up ("what about its cost?") into a stand-alone query.

Retrieval sees one query, not the conversation, so a follow-up must carry its topic.
A question is rewritten only when it depends on earlier turns: it opens like a
follow-up ("and for X?", "what about ..."), has no topic words of its own ("Why?"),
or holds a pronoun or demonstrative with no referent in the question itself ("how
does it drift?", "is that expensive?"). An independent question is searched as
asked. With a language model the model rewrites (told the same rule, within
REWRITE_TIMEOUT_S); without one, or when it fails or is late, a deterministic rule
prepends the key terms of the conversation's topic.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence

from chat.prompts import Turn, rewrite_messages
from ragsite.rag import providers
from ragsite.rag.exceptions import LLMError
from ragsite.rag.sparse import STOPWORDS
from ragsite.rag.types import ChatModel

logger = logging.getLogger(__name__)

# Pronouns that always point outside the question unless it names something before them.
PRONOUNS = frozenset(
    "it its it's itself they them their theirs themselves he him his she her hers".split()
)
DEMONSTRATIVES = frozenset("this that these those".split())
# After a demonstrative, words that show it points back ("is that costly?", "this one").
POINTING_WORDS = frozenset(
    """is are was were does do did mean means work works happen happens matter matters
    one ones part case thing things way approach example code error errors method function
    step idea concept feature option version answer again too also""".split()
)
# Before a demonstrative "that", words after which it is a pronoun, not "the X that ...".
THAT_PRONOUN_AFTER = frozenset(
    """is does do did was can could would should about of for with explain use mean
    like on from why how what and but so than into""".split()
)
QUESTION_OPENERS = frozenset("is are was were does do did can could would should why how".split())
# "is it possible to ..." and friends: an "it" that refers to nothing.
_EXPLETIVE_IT = re.compile(
    r"\b(?:is|was|isn't|would|will|does)\s+it\s+(?:possible|necessary|true|ok|okay|better|"
    r"safe|worth|a\s+good\s+idea|bad|wise|common|normal|matter)\b"
    r"|\bit(?:'s|\s+is)\s+(?:possible|necessary|better|safe|common|important|worth)\b"
)
# Connectives after which a pronoun can refer to a topic named earlier in the question.
CLAUSE_BREAKS = frozenset("and but while when because so if or , ; since after before".split())
FOLLOW_UP_OPENERS = (
    "what about",
    "how about",
    "and ",
    "and,",
    "or ",
    "but ",
    "also ",
    "how so",
    "what else",
    "tell me more",
    "more about",
    "more on",
    "same for",
    "then ",
)
# Question scaffolding that says nothing about the topic.
FILLER = frozenset(
    """how what why which who whom whose when where does do did can could would should
    is are was were be explain describe tell me please book say says said mean means
    work works working use used using give show list difference between example examples
    chapter section page thing things way ways more""".split()
)
REFERENT_TERMS = 2  # topic terms before a pronoun that can be its referent by themselves
MAX_TOPIC_TERMS = 6
MAX_REWRITE_CHARS = 300
REWRITE_MAX_TOKENS = 64
_TERM_RE = re.compile(r"[^\W_][\w+#.\-']*[\w+#]|[^\W_]")
_WORD_RE = re.compile(r"[\w']+|[,;]")


def _is_topic_word(word: str) -> bool:
    low = word.lower().strip("'")
    return len(low) >= 2 and low not in STOPWORDS and low not in FILLER


def key_terms(text: str) -> list[str]:
    """Return the topic words of a text in order, original case, without repeats."""
    terms: list[str] = []
    seen: set[str] = set()
    for word in _TERM_RE.findall(text):
        low = word.lower().strip("'")
        if not _is_topic_word(word) or low in seen:
            continue
        seen.add(low)
        terms.append(word)
    return terms


def _points_back(words: list[str], index: int) -> bool:
    """True when the pronoun or demonstrative at `index` has no referent in the question."""
    word = words[index]
    following = words[index + 1] if index + 1 < len(words) else ""
    if word in DEMONSTRATIVES:
        if index == 1 and words[0] in QUESTION_OPENERS:
            return True  # "Is that expensive?", "Does this scale?"
        if not following or following in {",", ";"} or following in POINTING_WORDS:
            if word != "that" or index == 0 or words[index - 1] in THAT_PRONOUN_AFTER:
                return True
        return False
    # A pronoun refers back unless the question names a topic before it: enough topic
    # words, or one topic word and a new clause ("What is ownership and why does it matter?").
    before = words[:index]
    topics = [w for w in before if _is_topic_word(w) and w not in PRONOUNS]
    if len(topics) >= REFERENT_TERMS:
        return False
    return not (topics and any(w in CLAUSE_BREAKS for w in before))


def depends_on_history(message: str) -> bool:
    """True when a question leans on earlier turns (see the module docstring for the rule)."""
    low = " ".join(message.lower().split())
    if low.startswith(FOLLOW_UP_OPENERS):
        return True
    if not key_terms(message):
        return True  # "Why?", "Tell me more", "Give an example"
    words = _WORD_RE.findall(_EXPLETIVE_IT.sub(" ", low))
    return any(
        (word in PRONOUNS or word in DEMONSTRATIVES) and _points_back(words, index)
        for index, word in enumerate(words)
    )


# The earlier name (tests/chat/test_retrieval.py still imports it).
looks_like_follow_up = depends_on_history


def _topic_terms(history: Sequence[Turn]) -> list[str]:
    """Key terms of the latest turn that set a topic (not itself a follow-up)."""
    for turn in reversed(history):
        if not depends_on_history(turn.question):
            return key_terms(turn.question)[:MAX_TOPIC_TERMS]
    latest = history[-1]
    terms = key_terms(latest.rewritten_query or latest.question)
    if not terms and latest.top_heading:
        terms = key_terms(latest.top_heading.split(" > ")[-1])
    return terms[:MAX_TOPIC_TERMS]


def query_rewrite_rule(*, message: str, history: Sequence[Turn]) -> str:
    """Prepend the conversation's topic terms to a dependent question; leave others as is."""
    if not history or not depends_on_history(message):
        return message
    present = {term.lower() for term in key_terms(message)}
    topic = [term for term in _topic_terms(history) if term.lower() not in present]
    if not topic:
        return message
    return f"{' '.join(topic)} {message}"


async def query_rewrite(
    *,
    message: str,
    history: Sequence[Turn],
    llm: ChatModel | None = None,
    timeout_s: float | None = None,
) -> str:
    """Return a stand-alone search query for `message` given the recent turns.

    Args:
        message: the reader's new message.
        history: the recent exchanges, oldest first.
        llm: the chat model; default the configured one. An extractive model, an
            LLMError, an unusable reply or no reply within `timeout_s` seconds means
            the deterministic rule answers.
        timeout_s: the model's time budget (REWRITE_TIMEOUT_S for the chat); None waits.

    Returns:
        The query retrieval should search for (the message itself without history,
        and for a question that does not depend on the history).
    """
    if not history:
        return message
    llm = llm or providers.get_chat_model()
    if llm.provider == "extractive":
        return query_rewrite_rule(message=message, history=history)
    try:
        async with asyncio.timeout(timeout_s):
            rewritten = await llm.complete(
                rewrite_messages(message=message, history=history), max_tokens=REWRITE_MAX_TOKENS
            )
    except (LLMError, TimeoutError) as exc:
        logger.warning("query rewriting by the LLM failed, using the rule: %r", exc)
        return query_rewrite_rule(message=message, history=history)
    except Exception:  # garbage from the model (a body the SDK cannot parse) is an outage
        logger.warning("query rewriting by the LLM was unusable, using the rule", exc_info=True)
        return query_rewrite_rule(message=message, history=history)
    rewritten = rewritten.strip().strip("\"'").strip() if isinstance(rewritten, str) else ""
    if not rewritten or len(rewritten) > MAX_REWRITE_CHARS:
        return query_rewrite_rule(message=message, history=history)
    return rewritten.splitlines()[0]
