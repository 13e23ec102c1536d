"""Chat services: retrieval, query rewriting, answering, conversations and feedback.

Callers import from here; the modules split the work by concern:
`retrieval` (hybrid search, floor, duplicates), `rewriting` (follow-ups into
stand-alone queries), `sources` (packing hits into numbered sources), `answering`
(the chat stream under the LLM's deadlines), `events` (its typed events and outcome),
`follow_ups` (suggested next questions), `citations` (checking [n] markers),
`conversations` (sessions, messages, feedback).
"""

from .answering import answer_collect, answer_stream
from .citations import CitationFilter, citations_clean
from .conversations import answer_start, feedback_submit, message_store
from .events import AnswerOutcome, ChatEvent, Done, Failed, Meta, Sources, Token
from .follow_ups import follow_ups_suggest
from .retrieval import Retrieval, book_search, hits_collapse
from .rewriting import depends_on_history, query_rewrite, query_rewrite_rule
from .sources import sources_pack

__all__ = [
    "AnswerOutcome",
    "ChatEvent",
    "CitationFilter",
    "Done",
    "Failed",
    "Meta",
    "Retrieval",
    "Sources",
    "Token",
    "answer_collect",
    "answer_start",
    "answer_stream",
    "book_search",
    "citations_clean",
    "depends_on_history",
    "feedback_submit",
    "follow_ups_suggest",
    "hits_collapse",
    "message_store",
    "query_rewrite",
    "query_rewrite_rule",
    "sources_pack",
]
