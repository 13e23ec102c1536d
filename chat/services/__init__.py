"""Chat services: retrieval, query rewriting, answering, conversations and feedback.

Callers import from here; the modules split the work by concern:
`retrieval` (hybrid search, floor, duplicates), `rewriting` (follow-ups into
stand-alone queries), `answering` (the SSE event stream), `citations` (checking
[n] markers), `conversations` (sessions, messages, feedback).
"""

from .answering import answer_collect, answer_stream, follow_ups_suggest, sources_pack
from .citations import CitationFilter, citations_clean
from .conversations import conversation_resolve, feedback_submit, message_finish, message_start
from .retrieval import Retrieval, book_search, hits_collapse
from .rewriting import query_rewrite, query_rewrite_rule

__all__ = [
    "CitationFilter",
    "Retrieval",
    "answer_collect",
    "answer_stream",
    "book_search",
    "citations_clean",
    "conversation_resolve",
    "feedback_submit",
    "follow_ups_suggest",
    "hits_collapse",
    "message_finish",
    "message_start",
    "query_rewrite",
    "query_rewrite_rule",
    "sources_pack",
]
