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


@pytest.fixture
def two_servers(tmp_path, redis_url):
    """Two uvicorn processes on loopback, each with its own data folder, one shared Redis."""
    processes, urls = [], []
    try:
        for name in ("a", "b"):
            port = free_port()
            env = scale_env(data_dir=tmp_path / name, REDIS_URL=redis_url, MCP_RATE_LIMIT="5/h")
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
