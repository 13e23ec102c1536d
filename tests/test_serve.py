"""The README's first command: `manage.py serve` migrates, ingests an empty index and serves."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.test_health import free_port

REPO_DIR = Path(__file__).resolve().parent.parent


@pytest.fixture
def tiny_book(tmp_path: Path) -> Path:
    """A two-page Docusaurus book."""
    book = tmp_path / "book"
    (book / "guide").mkdir(parents=True)
    (book / "intro.md").write_text(
        "---\ntitle: Welcome\n---\n\nThis handbook teaches beekeeping to beginners.\n\n"
        "## Hives\n\nA Langstroth hive has removable frames stacked in boxes called supers.\n"
    )
    (book / "guide" / "index.mdx").write_text(
        "---\ntitle: Seasons\n---\nimport Tabs from '@theme/Tabs';\n\n"
        "A colony lives through the year in four rhythms, and the keeper follows them: "
        "building up in spring, foraging hard in summer, storing honey in autumn.\n\n"
        "## Winter\n\nIn winter the colony forms a tight cluster to keep the queen warm. "
        "The bees shiver their flight muscles to make heat, and the cluster slowly moves "
        "across the combs to reach the stored honey. Never open the hive on a cold day.\n"
    )
    return book


def _read_response(conn: socket.socket) -> bytes:
    """One whole HTTP/1.1 response with a Content-Length, read off a kept-alive socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, "the server closed the connection"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = conn.recv(65536)
        assert chunk, "the server closed the connection"
        body += chunk
    return head


def test_serve_migrates_ingests_and_answers(tmp_path, tiny_book):
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}},
        "RAGSITE_SKIP_DOTENV": "1",
        "RAGSITE_DATA_DIR": str(tmp_path / "data"),
        "BOOK_DIR": str(tiny_book),
        "SITE_URL": "https://bees.example",
        "DJANGO_SETTINGS_MODULE": "ragsite.settings",
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=REPO_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        health = None
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"{base}/api/health", timeout=5).json()
                if health["index"]["documents"] == 2:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, process.stdout.read()
            time.sleep(0.5)
        assert health is not None, "the server never answered /api/health"
        assert health["status"] == "ok"
        assert health["index"]["documents"] == 2
        assert health["checks"]["vector_store"]["points"] >= 2
        assert (tmp_path / "data" / "ragsite.sqlite3").exists()

        results = httpx.get(
            f"{base}/api/search", params={"q": "winter cluster queen"}, timeout=10
        ).json()["results"]
        assert results[0]["path"] == "guide/index.mdx"
        assert results[0]["url"] == "https://bees.example/docs/guide/#winter"

        status = httpx.get(f"{base}/api/ingest/status", timeout=5).json()
        assert status["status"] == "succeeded"
        assert status["source"] == "manage.py"
        assert httpx.get(f"{base}/", timeout=5).status_code == 200
        # An idle keep-alive connection outlives uvicorn's default 5 s (serve.KEEP_ALIVE_S):
        # a proxy's or a busy client's next request on it is not lost.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            for pause in (6, 0):
                conn.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert _read_response(conn).startswith(b"HTTP/1.1 200")
                time.sleep(pause)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
