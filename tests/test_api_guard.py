"""The ASGI body guard against a live uvicorn, over raw sockets: a body that never
arrives is answered 408 and the connection closed; an oversized body is refused (413)
before it is read; requests that behave are untouched, streams included."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from ragsite.guard import REQUEST_TIMEOUT_MESSAGE
from tests.chat import conftest as chat_fixtures
from tests.chat.conftest import by_name, chat_events

# The small robotics book, indexed with the real embedder (tests/chat/conftest.py).
small_book = chat_fixtures.small_book
small_book_index = chat_fixtures.small_book_index

pytestmark = pytest.mark.django_db(transaction=True)

# A bound on how long a test waits for the server, not a timing assert: a guard that
# never answers fails the test instead of hanging it.
SOCKET_TIMEOUT_S = 20


def raw_exchange(url: str, head: bytes, body: bytes = b"") -> tuple[bytes, bool]:
    """Send `head` (and `body`) on a fresh connection; return all bytes the server sent
    and whether it closed the connection."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=SOCKET_TIMEOUT_S) as sock:
        sock.sendall(head + body)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return received, False
            if not chunk:
                return received, True
            received += chunk


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])
    }
    return status, headers, body


def request_head(path: str, **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.fixture
def short_deadline(settings):
    settings.REQUEST_BODY_TIMEOUT_S = 0.5
    return settings


@pytest.mark.parametrize("path", ["/api/chat", "/api/feedback", "/admin/login/"])
def test_headers_without_the_body_are_answered_408_and_closed(live_server, short_deadline, path):
    head = request_head(path, Content_Type="application/json", Content_Length="100")
    raw, closed = raw_exchange(live_server.url, head)
    assert closed, "the server kept the half-open connection"
    status, headers, body = split_response(raw)
    assert status == 408
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert json.loads(body)["error"] == {
        "code": "request_timeout",
        "message": REQUEST_TIMEOUT_MESSAGE,
        "details": {"timeout_s": 0.5},
    }


def test_a_body_that_stops_half_way_is_answered_408(live_server, short_deadline):
    head = request_head("/api/chat", Content_Type="application/json", Content_Length="200")
    raw, closed = raw_exchange(live_server.url, head, b'{"message": "What is Li')
    assert closed
    assert split_response(raw)[0] == 408


def test_an_oversized_content_length_is_413_before_the_body_is_sent(live_server, settings):
    head = request_head("/api/chat", Content_Type="application/json", Content_Length=str(3 * 2**20))
    raw, closed = raw_exchange(live_server.url, head)  # the 3 MB never leave the client
    assert closed
    status, headers, body = split_response(raw)
    assert status == 413
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    assert json.loads(body)["error"]["details"] == {"limit_bytes": settings.API_MAX_BODY_BYTES}


def test_the_guards_refusals_carry_cors_headers_for_an_allowed_origin(live_server, settings):
    """A widget on the book's site can read why its request was refused (413, 408)."""
    settings.CORS_ALLOWED_ORIGINS = ["https://book.example"]
    settings.REQUEST_BODY_TIMEOUT_S = 0.5
    big = request_head("/api/chat", Origin="https://book.example", Content_Length=str(3 * 2**20))
    status, headers, _ = split_response(raw_exchange(live_server.url, big)[0])
    assert status == 413
    assert headers["access-control-allow-origin"] == "https://book.example"
    assert "retry-after" in headers["access-control-expose-headers"].lower()

    slow = request_head("/api/chat", Origin="https://book.example", Content_Length="20")
    status, headers, _ = split_response(raw_exchange(live_server.url, slow, b'{"mess')[0])
    assert status == 408
    assert headers["access-control-allow-origin"] == "https://book.example"

    foreign = request_head(
        "/api/chat", Origin="https://elsewhere.example", Content_Length=str(3 * 2**20)
    )
    status, headers, _ = split_response(raw_exchange(live_server.url, foreign)[0])
    assert status == 413
    assert "access-control-allow-origin" not in headers


def test_an_oversized_chunked_body_is_413(live_server, settings):
    settings.API_MAX_BODY_BYTES = 2048
    head = request_head("/api/chat", Content_Type="application/json", Transfer_Encoding="chunked")
    payload = json.dumps({"message": "x" * 4000}).encode()
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(payload[i : i + 1000]), payload[i : i + 1000])
        for i in range(0, len(payload), 1000)
    )
    raw, closed = raw_exchange(live_server.url, head, chunks + b"0\r\n\r\n")
    assert closed
    status, _, body = split_response(raw)
    assert status == 413
    assert json.loads(body)["error"]["code"] == "payload_too_large"


async def test_a_normal_chat_still_streams_with_a_short_deadline(
    live_server, small_book, short_deadline
):
    short_deadline.REQUEST_BODY_TIMEOUT_S = 0.1
    response, events = await chat_events(live_server.url, {"message": "What is an IMU?"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    grouped = by_name(events)
    assert [event.event for event in events][:2] == ["meta", "sources"]
    assert "accelerometers and gyroscopes" in grouped["done"][0]["answer"]


def test_live_errors_are_json_for_big_bodies_many_parameters_and_unknown_paths(live_server):
    with httpx.Client(base_url=live_server.url, timeout=SOCKET_TIMEOUT_S) as client:
        # Over the 64 KB cap, yet small enough to be sent whole before the early 413: a
        # 3 MB body races the server's close (a reset instead of the answer on a loaded
        # machine); the raw-socket tests above cover a large Content-Length.
        big = client.post(
            "/api/feedback",
            content=json.dumps({"comment": "x" * 100 * 2**10}),
            headers={"Content-Type": "application/json"},
        )
        assert big.status_code == 413
        assert big.json()["error"]["code"] == "payload_too_large"

        query = "&".join("p=1" for _ in range(10_000))
        many = client.get(f"/api/search?q=lidar&{query}")
        assert many.status_code == 400
        assert many.json()["error"]["code"] == "too_many_parameters"

        for method in ("GET", "POST", "DELETE"):
            unknown = client.request(method, "/api/does-not-exist")
            assert unknown.status_code == 404
            assert unknown.json()["error"]["code"] == "not_found"
