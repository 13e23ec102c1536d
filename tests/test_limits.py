"""Rate limits that hold behind a proxy, per endpoint, and the admin login lockout."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from django.contrib.auth import get_user_model

from ragsite.ratelimit import RATE_LIMITED_MESSAGE, client_ip_from, client_key
from tests.conftest import import_script

PROXY_CLIENT = "203.0.113.7"
OTHER_CLIENT = "198.51.100.9"


class _Server:
    """uvicorn on a loopback port as `manage.py serve` runs it: proxy headers off."""

    def __init__(self) -> None:
        config = uvicorn.Config(
            "ragsite.asgi:application",
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            access_log=False,
            proxy_headers=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def served(transactional_db):
    """The base URL of a real uvicorn serving ragsite like `manage.py serve`."""
    with _Server() as url:
        yield url


def random_address() -> str:
    return ".".join(str(random.randint(1, 254)) for _ in range(4))  # noqa: S311


# --- the client address --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hops", "forwarded", "expected"),
    [
        (0, "6.6.6.6, 203.0.113.7", "10.0.0.1"),  # no proxy: the header is the client's own
        (1, "6.6.6.6, 203.0.113.7", "203.0.113.7"),  # what the client wrote is left of it
        (1, "203.0.113.7", "203.0.113.7"),
        (2, "6.6.6.6, 203.0.113.7, 10.1.1.1", "203.0.113.7"),
        (2, "203.0.113.7", "203.0.113.7"),  # met only the last proxy
        (1, "", "10.0.0.1"),  # reached us without the proxy
        (1, "6.6.6.6, 203.0.113.7:5123", "203.0.113.7"),  # a proxy that adds the port
        (1, "[2001:db8::1]:443", "2001:db8::1"),
        (1, "2001:db8::1", "2001:db8::1"),
    ],
)
def test_client_address_counts_hops_from_the_right(hops, forwarded, expected):
    meta = {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": forwarded}
    assert client_ip_from(meta, hops=hops) == expected


def test_ipv6_clients_share_their_64(rf):
    one = rf.get("/", REMOTE_ADDR="2001:db8:1:2::1")
    two = rf.get("/", REMOTE_ADDR="2001:db8:1:2:ffff::9")
    other = rf.get("/", REMOTE_ADDR="2001:db8:1:3::1")
    mapped = rf.get("/", REMOTE_ADDR="::ffff:203.0.113.7")
    assert client_key("g", one) == client_key("g", two) == "2001:db8:1:2::/64"
    assert client_key("g", other) != client_key("g", one)
    assert client_key("g", mapped) == PROXY_CLIENT


def search_statuses(url: str, forwarded: list[str]) -> list[int]:
    with httpx.Client(base_url=url, timeout=30) as http:
        return [
            http.get(
                "/api/search", params={"q": "lidar"}, headers={"X-Forwarded-For": xff}
            ).status_code
            for xff in forwarded
        ]


def test_forged_forwarded_for_buys_no_budget_behind_one_proxy(served, settings):
    settings.TRUSTED_PROXY_HOPS = 1
    settings.SEARCH_RATE_LIMIT = "5/d"
    forged = [f"{random_address()}, {PROXY_CLIENT}" for _ in range(300)]
    statuses = search_statuses(served, forged)
    assert statuses.count(200) == 5
    assert statuses.count(429) == 295
    # Another client behind the same proxy has its own budget.
    assert search_statuses(served, [f"{random_address()}, {OTHER_CLIENT}"]) == [200]


def test_without_proxy_hops_the_header_is_ignored(served, settings):
    settings.TRUSTED_PROXY_HOPS = 0
    settings.SEARCH_RATE_LIMIT = "5/d"
    # Different right-most entries, one socket peer: one client.
    statuses = search_statuses(served, [f"{random_address()}, {OTHER_CLIENT}"] * 3)
    statuses += search_statuses(served, [f"{random_address()}, {PROXY_CLIENT}"] * 3)
    assert statuses == [200] * 5 + [429]


# --- one limit per endpoint ------------------------------------------------------------------


def assert_limited(response) -> None:
    """A 429 with Retry-After and the JSON error shape of API.md."""
    assert response.status_code == 429
    retry_after = int(response["Retry-After"])
    assert retry_after >= 1
    assert response.json() == {
        "error": {
            "code": "rate_limited",
            "message": RATE_LIMITED_MESSAGE,
            "details": {"retry_after": retry_after},
        }
    }


@pytest.mark.django_db
def test_feedback_has_its_own_limit(client, settings):
    settings.FEEDBACK_RATE_LIMIT = "3/d"
    settings.SEARCH_RATE_LIMIT = "100/d"
    body = {"message_id": "00000000-0000-4000-8000-000000000000", "rating": "up"}
    statuses = [
        client.post("/api/feedback", body, content_type="application/json").status_code
        for _ in range(3)
    ]
    assert statuses == [404, 404, 404]  # unknown message, but counted
    assert_limited(client.post("/api/feedback", body, content_type="application/json"))
    # Spending the feedback budget leaves the other endpoints alone.
    assert client.get("/api/search", {"q": "lidar"}).status_code == 200


@pytest.mark.django_db
def test_wrong_ingest_tokens_run_out(client, settings):
    settings.INGEST_TOKEN = "the-real-token-0123456789"
    settings.INGEST_RATE_LIMIT = "4/d"
    statuses = [
        client.post(
            "/api/ingest",
            {},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer guess{n}",
        ).status_code
        for n in range(4)
    ]
    assert statuses == [403] * 4
    guess = client.post(
        "/api/ingest", {}, content_type="application/json", HTTP_AUTHORIZATION="Bearer guess5"
    )
    assert_limited(guess)
    # Even the right token waits now: guessing and using share the budget.
    right = client.post(
        "/api/ingest",
        {},
        content_type="application/json",
        HTTP_AUTHORIZATION="Bearer the-real-token-0123456789",
    )
    assert right.status_code == 429


@pytest.mark.django_db
def test_chat_limit_is_separate_from_search(client, settings):
    settings.CHAT_RATE_LIMIT = "1/d"
    settings.SEARCH_RATE_LIMIT = "100/d"
    ask = {"message": "What is LiDAR?", "stream": False}
    assert client.post("/api/chat", ask, content_type="application/json").status_code == 200
    assert_limited(client.post("/api/chat", ask, content_type="application/json"))
    assert client.get("/api/search", {"q": "lidar"}).status_code == 200


# --- admin login (django-axes) --------------------------------------------------------------


@pytest.mark.django_db
def test_admin_login_locks_out_after_failures(client, settings):
    settings.AXES_FAILURE_LIMIT = 5
    get_user_model().objects.create_superuser("editor", "editor@example.com", "right-password-1")

    def login(username: str, password: str, address: str = PROXY_CLIENT):
        return client.post(
            "/admin/login/?next=/admin/",
            {"username": username, "password": password},
            REMOTE_ADDR=address,
        )

    wrong = [login("editor", f"wrong-{n}").status_code for n in range(30)]
    assert wrong[:4] == [200] * 4  # the form again, with an error
    assert set(wrong[5:]) == {429}  # locked out
    refused = login("editor", "right-password-1")
    assert refused.status_code == 429
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302  # still not logged in

    # The lockout is per address and username: the editor from elsewhere can log in.
    allowed = login("editor", "right-password-1", address=OTHER_CLIENT)
    assert allowed.status_code == 302
    assert allowed["Location"] == "/admin/"


def test_manage_py_serve_ignores_uvicorns_proxy_headers(tmp_path):
    """The real `manage.py serve`, even with the old Dockerfile's FORWARDED_ALLOW_IPS=*:
    with no trusted hop the socket peer is the client, whatever the header says."""
    common = import_script(Path(__file__).resolve().parent.parent / "benchmarks", "_common")
    env = {"TRUSTED_PROXY_HOPS": "0", "SEARCH_RATE_LIMIT": "3/d", "FORWARDED_ALLOW_IPS": "*"}
    with common.running_server(
        data_dir=tmp_path / "data", book_dir=tmp_path, ingest="never", extra_env=env
    ) as server:
        forged = [f"{random_address()}, {random_address()}" for _ in range(10)]
        statuses = search_statuses(server.url, forged)
    assert statuses == [200] * 3 + [429] * 7


def test_axes_records_only_valid_addresses():
    from django.test import RequestFactory

    from ragsite.ratelimit import axes_client_ip

    factory = RequestFactory()
    assert axes_client_ip(factory.get("/", REMOTE_ADDR="203.0.113.9")) == "203.0.113.9"
    no_peer = factory.get("/")
    del no_peer.META["REMOTE_ADDR"]
    assert axes_client_ip(no_peer) == "0.0.0.0"
