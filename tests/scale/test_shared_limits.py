"""Two real uvicorn processes sharing one real Redis: a client over its limit on one is
limited on the other (REDIS_URL makes the rate-limit cache shared)."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from tests.scale.conftest import REPO_DIR, free_port, scale_env, wait_for_port

MCP_LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


LLM_ENV = {  # an LLM is configured (so the budget applies); the budget refuses before it
    "LLM_PROVIDER": "openai",
    "OPENAI_API_KEY": "test-key",
    "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
    "LLM_DAILY_TOKENS_PER_IP": "1000",
}


@pytest.fixture
def two_servers(tmp_path, redis_url):
    """Two uvicorn processes on loopback, each with its own data folder, one shared Redis."""
    processes, urls = [], []
    try:
        for name in ("a", "b"):
            port = free_port()
            env = scale_env(
                data_dir=tmp_path / name, REDIS_URL=redis_url, MCP_RATE_LIMIT="5/h", **LLM_ENV
            )
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "ragsite.asgi:application",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
                cwd=REPO_DIR,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            processes.append(process)
            urls.append(f"http://127.0.0.1:{port}")
        for process, url in zip(processes, urls, strict=True):
            wait_for_port(int(url.rsplit(":", 1)[1]), timeout=60, process=process)
        yield urls
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


def test_a_limit_spent_on_one_process_holds_on_the_other(two_servers):
    first, second = two_servers
    with httpx.Client(timeout=30) as http:
        spent = [http.post(f"{first}/mcp", json=MCP_LIST, headers=MCP_HEADERS) for _ in range(5)]
        assert all(r.status_code == 200 for r in spent), [r.status_code for r in spent]
        elsewhere = http.post(f"{second}/mcp", json=MCP_LIST, headers=MCP_HEADERS)
    assert elsewhere.status_code == 429
    assert int(elsewhere.headers["Retry-After"]) > 0
    assert elsewhere.json()["error"]["code"] == "rate_limited"


def test_an_llm_budget_spent_in_the_shared_cache_is_refused_by_both(
    two_servers, redis_url, settings
):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": "ragsite",
        }
    }
    settings.LLM_DAILY_TOKENS_PER_IP = 1000
    from ragsite.budget import budget_charge

    with httpx.Client(timeout=30) as http:
        before = http.post(f"{two_servers[0]}/api/chat", json={"message": "hi", "stream": False})
        assert before.status_code != 429  # nothing spent yet (the fake LLM address is down)
        budget_charge(client="127.0.0.1", tokens=1000)  # today's allowance, used up
        refused = [
            http.post(f"{url}/api/chat", json={"message": "What is a borrow?"})
            for url in two_servers
        ]
    for response in refused:
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "llm_budget_exhausted"
        assert int(response.headers["Retry-After"]) > 0
