"""A small OpenAI-compatible server for tests, spoken to by the real `openai` SDK.

It runs under uvicorn in a daemon thread on 127.0.0.1 and serves
`POST /v1/chat/completions` (streamed and not), `POST /v1/embeddings` and
`GET /v1/models`. Tests script it through `FakeOpenAI` (replies, failures, delays, a
gate that holds the first token, a slow first token or slow completions, an outage,
garbled 200 answers) and read back what it received (`requests`) and whether a stream
was cut off by the client (`cancelled_streams`).

The script is read by the server thread and written by the test thread; every
attribute is replaced whole (no in-place edits of shared state outside the lock).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

DEFAULT_REPLY = "The book explains this in its first chapter [1]."
DEFAULT_EMBEDDING_DIMENSION = 64
GATE_MAX_HOLD_S = 30.0  # a test that forgets to release the gate still finishes
KEEPALIVE_EVERY_S = 0.2  # SSE comments while the gate holds, so client read timeouts don't fire
# Ways to answer 200 with something that is not a usable completion.
GARBLE_MODES = ("malformed", "non_json_chunks", "empty_choices")
MALFORMED_BODY = "<html><body>upstream proxy says hello</body></html>"


def fake_embedding(text: str, dimension: int) -> list[float]:
    """Return a deterministic unit vector for a text (same text, same vector)."""
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dimension)
    return (vector / np.linalg.norm(vector)).astype(np.float32).tolist()


def split_words(text: str) -> list[str]:
    """Split a reply into stream pieces whose concatenation is the reply."""
    return re.findall(r"\s*\S+\s*$|\s*\S+", text) or [text]


class FakeOpenAI:
    """The fake server plus its per-test script and records."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""  # base URL including /v1, what OPENAI_BASE_URL is set to
        self.reset()

    # --- script (called by tests) -----------------------------------------------------

    def reset(self) -> None:
        """Forget the script and the records (called before and after each test)."""
        old_gate = getattr(self, "gate", None)
        if old_gate is not None:
            old_gate.set()  # free a stream still held by an earlier test
        with self._lock:
            self.replies: deque[str] = deque()
            self.default_reply = DEFAULT_REPLY
            self.responder: Callable[[dict[str, Any]], str] | None = None
            self.token_delay = 0.0
            self.response_delay = 0.0
            self.fail_remaining = 0
            self.fail_status = 500
            self.gate: threading.Event | None = None
            self.first_token_delay = 0.0
            self.completion_delay = 0.0
            self.garble_mode: str | None = None
            self.embedding_dimension = DEFAULT_EMBEDDING_DIMENSION
            self.requests: list[dict[str, Any]] = []
            self.completed_streams = 0
            self.cancelled_streams = 0
            self.stream_cancelled = threading.Event()

    def queue_reply(self, *texts: str) -> None:
        """Answer the next chat requests with these texts, in order (then the default)."""
        with self._lock:
            self.replies.extend(texts)

    def reply_with(self, responder: Callable[[dict[str, Any]], str]) -> None:
        """Compute each chat reply from the request body (overrides queued replies)."""
        self.responder = responder

    def fail_next(self, count: int = 1, *, status: int = 500) -> None:
        """Answer the next `count` requests (any endpoint) with an error status."""
        with self._lock:
            self.fail_remaining = count
            self.fail_status = status

    def down(self) -> None:
        """Answer every request with a 503 until reset (an outage, retries included)."""
        self.fail_next(1_000_000, status=503)

    def slow_first_token(self, seconds: float) -> None:
        """Make streams wait `seconds` (sending keep-alive comments) before their first token."""
        self.first_token_delay = seconds

    def slow_completions(self, seconds: float) -> None:
        """Make non-streamed completions (rewrites, follow-ups) take `seconds` to answer."""
        self.completion_delay = seconds

    def garble(self, mode: str) -> None:
        """Answer chat requests 200 with garbage: `malformed` (not JSON, not SSE),
        `non_json_chunks` (SSE whose data is not JSON) or `empty_choices` (no choices)."""
        if mode not in GARBLE_MODES:
            raise ValueError(f"unknown garble mode {mode!r}")
        self.garble_mode = mode

    def hold_first_token(self) -> threading.Event:
        """Make streams wait before their first token until the returned event is set."""
        gate = threading.Event()
        self.gate = gate
        return gate

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """Bodies of the chat completion requests received, in order."""
        return [r["body"] for r in self.requests if r["path"].endswith("/chat/completions")]

    @property
    def embedding_requests(self) -> list[dict[str, Any]]:
        """Bodies of the embedding requests received, in order."""
        return [r["body"] for r in self.requests if r["path"].endswith("/embeddings")]

    def wait_for_cancel(self, timeout: float = 10.0) -> bool:
        """Wait until a stream has been cut off by its client; False if none was."""
        return self.stream_cancelled.wait(timeout)

    # --- server lifecycle --------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> FakeOpenAI:
        """Serve on a free loopback port in a daemon thread."""
        config = uvicorn.Config(
            self.app(),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-openai", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake OpenAI server did not start")
            time.sleep(0.02)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self.reset()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    # --- the ASGI app ------------------------------------------------------------------

    def app(self) -> Starlette:
        """Build the Starlette app serving this fake."""
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    async def _prologue(self, request: Request) -> tuple[dict[str, Any], Response | None]:
        """Record the request, apply the scripted delay and failure; return (body, error)."""
        body: dict[str, Any] = {}
        if request.method == "POST":
            body = await request.json()
        with self._lock:
            self.requests = [*self.requests, {"path": request.url.path, "body": body}]
            failing = self.fail_remaining > 0
            if failing:
                self.fail_remaining -= 1
            status, delay = self.fail_status, self.response_delay
        if delay:
            # Sleep in steps and stop when the client gives up (its timeout fired).
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline:
                await asyncio.sleep(0.02)
                if await request.is_disconnected():
                    return body, Response(status_code=499)
        if failing:
            error = {
                "error": {
                    "message": f"scripted failure ({status})",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            }
            # retry-after-ms keeps the SDK's backoff between retries short in tests.
            return body, JSONResponse(error, status_code=status, headers={"retry-after-ms": "10"})
        return body, None

    def _next_reply(self, body: dict[str, Any]) -> str:
        if self.responder is not None:
            return self.responder(body)
        with self._lock:
            return self.replies.popleft() if self.replies else self.default_reply

    async def _chat(self, request: Request) -> Response:
        body, error = await self._prologue(request)
        if error is not None:
            return error
        if not body.get("stream") and self.completion_delay:
            if await self._sleep_unless_disconnected(request, self.completion_delay):
                return Response(status_code=499)
        garbled = self._garbled(body)
        if garbled is not None:
            return garbled
        reply = self._next_reply(body)
        model = body.get("model", "fake-chat")
        usage = {
            "prompt_tokens": sum(len(str(m.get("content", "")).split()) for m in body["messages"]),
            "completion_tokens": len(split_words(reply)),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": reply},
                            "finish_reason": "stop",
                            "logprobs": None,
                        }
                    ],
                    "usage": usage,
                }
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(
            self._stream(
                reply,
                model,
                usage if include_usage else None,
                gate=self.gate,
                token_delay=self.token_delay,
                first_token_delay=self.first_token_delay,
                cancelled=self.stream_cancelled,
            ),
            media_type="text/event-stream",
        )

    async def _stream(
        self,
        reply: str,
        model: str,
        usage: dict[str, int] | None,
        *,
        gate: threading.Event | None,
        token_delay: float,
        cancelled: threading.Event,
        first_token_delay: float = 0.0,
    ):
        def event(payload: dict[str, Any]) -> str:
            chunk = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                **payload,
            }
            return f"data: {json.dumps(chunk)}\n\n"

        finished = False
        try:
            yield event(
                {
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": ""},
                            "finish_reason": None,
                        }
                    ]
                }
            )
            if gate is not None:
                held_since = time.monotonic()
                while not gate.is_set() and time.monotonic() - held_since < GATE_MAX_HOLD_S:
                    await asyncio.sleep(KEEPALIVE_EVERY_S)
                    yield ": keep-alive\n\n"
            if first_token_delay:
                until = time.monotonic() + first_token_delay
                while time.monotonic() < until:
                    await asyncio.sleep(min(KEEPALIVE_EVERY_S, max(0.0, until - time.monotonic())))
                    yield ": keep-alive\n\n"
            for piece in split_words(reply):
                if token_delay:
                    await asyncio.sleep(token_delay)
                yield event(
                    {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                )
            yield event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            if usage is not None:
                yield event({"choices": [], "usage": usage})
            yield "data: [DONE]\n\n"
            finished = True
        finally:
            # Starlette cancels this generator when the client disconnects mid-stream.
            with self._lock:
                if finished:
                    self.completed_streams += 1
                else:
                    self.cancelled_streams += 1
            if not finished:
                cancelled.set()

    async def _sleep_unless_disconnected(self, request: Request, seconds: float) -> bool:
        """Sleep in steps; True when the client gave up meanwhile."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            if await request.is_disconnected():
                return True
        return False

    def _garbled(self, body: dict[str, Any]) -> Response | None:
        """The scripted garbage for a chat request, or None to answer normally."""
        mode = self.garble_mode
        if mode is None:
            return None
        if mode == "malformed":
            return Response(MALFORMED_BODY, status_code=200, media_type="application/json")
        if mode == "empty_choices":
            empty = {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0}
            if not body.get("stream"):
                return JSONResponse({**empty, "model": "fake-chat", "choices": []})
            chunk = json.dumps({**empty, "object": "chat.completion.chunk", "choices": []})
            text = f"data: {chunk}\n\ndata: {chunk}\n\ndata: [DONE]\n\n"
            return Response(text, status_code=200, media_type="text/event-stream")
        # non_json_chunks: an SSE stream (or a body) whose data is not JSON.
        if not body.get("stream"):
            return Response("{not json", status_code=200, media_type="application/json")
        text = "data: {not json\n\ndata: ]]]\n\ndata: [DONE]\n\n"
        return Response(text, status_code=200, media_type="text/event-stream")

    async def _embeddings(self, request: Request) -> Response:
        body, error = await self._prologue(request)
        if error is not None:
            return error
        texts = body["input"]
        texts = [texts] if isinstance(texts, str) else texts
        dimension = int(body.get("dimensions") or self.embedding_dimension)
        as_base64 = body.get("encoding_format") == "base64"

        def encode(vector: list[float]) -> str | list[float]:
            if as_base64:  # the SDK asks for this by default: little-endian float32
                return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            return vector

        data = [
            {"object": "embedding", "index": i, "embedding": encode(fake_embedding(t, dimension))}
            for i, t in enumerate(texts)
        ]
        tokens = sum(len(str(t).split()) for t in texts)
        return JSONResponse(
            {
                "object": "list",
                "model": body.get("model", ""),
                "data": data,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def _models(self, request: Request) -> Response:
        _, error = await self._prologue(request)
        if error is not None:
            return error
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": "fake-chat", "object": "model", "created": 0, "owned_by": "tests"},
                    {"id": "fake-embedding", "object": "model", "created": 0, "owned_by": "tests"},
                ],
            }
        )
