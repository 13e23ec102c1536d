"""GET /api/health reports each real component: SQLite, Qdrant, the embedder, the LLM."""

from __future__ import annotations

import socket

import pytest

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
