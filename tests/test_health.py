"""GET /api/health reports each real component: SQLite, Qdrant, the embedder, the LLM."""

from __future__ import annotations

import socket
from pathlib import Path

import portalocker
import pytest

from ragsite import health as health_module
from ragsite.health import PROBE_PENDING_MESSAGE, STORE_UNAVAILABLE_MESSAGE
from ragsite.rag import providers
from tests.test_check_index import index_small_book

pytestmark = pytest.mark.django_db


def free_port() -> int:
    """Return a loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_all_ok_on_the_embedded_default(client):
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["version"] == "0.1.0"
    checks = body["checks"]
    assert checks["database"]["status"] == "ok"
    assert checks["database"]["latency_ms"] >= 0
    assert checks["vector_store"] == {
        **checks["vector_store"],
        "status": "ok",
        "mode": "embedded",
        "points": 0,
    }
    assert checks["embedder"]["status"] == "ok"
    assert checks["embedder"]["provider"] == "local"
    assert checks["embedder"]["dimension"] == 384
    # The extractive default is not a degradation: it is how ragsite runs offline.
    assert checks["llm"] == {"status": "ok", "provider": "extractive", "model": "extractive"}
    assert body["index"] == {"documents": 0, "chunks": 0, "last_ingested_at": None}


def test_llm_reachable_is_ok(client, llm_settings, fake_openai):
    body = client.get("/api/health").json()
    assert body["status"] == "ok"
    assert body["checks"]["llm"]["status"] == "ok"
    assert body["checks"]["llm"]["provider"] == "openai"
    assert any(r["path"].endswith("/models") for r in fake_openai.requests)


def test_llm_unreachable_is_degraded_but_answers(client, settings):
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"
    settings.OPENAI_MAX_RETRIES = 0
    settings.OPENAI_TIMEOUT = 1.0
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["llm"]["status"] == "degraded"
    assert body["checks"]["llm"]["provider"] == "openai"


def test_vector_store_unreachable_is_down(client, settings):
    settings.QDRANT_URL = f"http://127.0.0.1:{free_port()}"
    settings.QDRANT_TIMEOUT = 1.0
    response = client.get("/api/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert body["checks"]["vector_store"]["status"] == "down"
    assert body["checks"]["vector_store"]["mode"] == "server"
    assert body["checks"]["database"]["status"] == "ok"


def test_unknown_api_path_is_a_json_404(client):
    response = client.get("/api/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# --- a slow LLM never makes health slow ---------------------------------------------------


def test_slow_llm_is_degraded_without_waiting_for_it(client, llm_settings, fake_openai):
    llm_settings.OPENAI_TIMEOUT = 30.0
    fake_openai.response_delay = 20.0  # /v1/models answers after 20 s
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["llm"] == {
        "status": "degraded",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "error": PROBE_PENDING_MESSAGE,
    }
    assert body["checks"]["vector_store"]["status"] == "ok"


def test_llm_probe_is_cached(client, llm_settings, fake_openai):
    for _ in range(3):
        assert client.get("/api/health").json()["checks"]["llm"]["status"] == "ok"
    probes = [r for r in fake_openai.requests if r["path"].endswith("/models")]
    assert len(probes) == 1


# --- an unavailable store: chat and search 503, health down, and recovery ---------------------


def hold_store_lock(path: Path):
    """Hold the embedded store's folder lock as a second process would (a real flock on
    the data-folder lock every engine takes, ragsite.rag.datafolder)."""
    from ragsite.rag.datafolder import LOCK_FILE

    handle = (path / LOCK_FILE).open("a")
    portalocker.lock(handle, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
    return handle


@pytest.mark.django_db(transaction=True)
def test_locked_store_is_503_everywhere_then_recovers(client, settings, tmp_path):
    index_small_book(tmp_path, settings)
    ask = {"message": "What does LiDAR measure?", "stream": False}
    assert client.get("/api/search", {"q": "lidar"}).status_code == 200
    providers.reset()  # close our client: the folder is free for the "other process"
    health_module.clear_cache()
    handle = hold_store_lock(Path(settings.QDRANT_PATH))
    try:
        search = client.get("/api/search", {"q": "lidar"})
        chat = client.post("/api/chat", ask, content_type="application/json")
        streamed = client.post(
            "/api/chat", {"message": "What does LiDAR measure?"}, content_type="application/json"
        )
        health = client.get("/api/health")
    finally:
        portalocker.unlock(handle)
        handle.close()
    for response in (search, chat, streamed):
        assert response.status_code == 503
        assert response["Content-Type"] == "application/json"
        assert response.json()["error"] == {
            "code": "vector_store_locked",
            "message": STORE_UNAVAILABLE_MESSAGE,
            "details": {},
        }
    assert health.status_code == 503
    assert health.json()["status"] == "down"
    assert health.json()["checks"]["vector_store"]["code"] == "vector_store_locked"

    # The other process is gone: the next requests open the store again.
    assert client.get("/api/search", {"q": "lidar"}).json()["results"]
    assert client.post("/api/chat", ask, content_type="application/json").status_code == 200
    assert client.get("/api/health").json()["status"] == "ok"


def test_unreachable_store_is_503_for_chat_and_search(client, settings):
    settings.QDRANT_URL = f"http://127.0.0.1:{free_port()}"
    settings.QDRANT_TIMEOUT = 1.0
    for response in (
        client.get("/api/search", {"q": "lidar"}),
        client.post("/api/chat", {"message": "Hi?"}, content_type="application/json"),
    ):
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "vector_store_unavailable"
