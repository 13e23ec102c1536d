"""Fixtures for the scale-out tests: a real Redis server on loopback, real subprocesses.

Redis is started here from Debian's `redis-server` (bin/test and .ci/run install it); the
tests skip without it, unless RAGSITE_REQUIRE_SERVICES=1 (CI) turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parents[2]
REQUIRE_SERVICES = os.environ.get("RAGSITE_REQUIRE_SERVICES") == "1"


def need(what: str) -> None:
    """Skip (locally) or fail (CI) when a service the test needs is missing."""
    message = f"{what} is not available"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (RAGSITE_REQUIRE_SERVICES=1)")
    pytest.skip(message)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, *, timeout: float = 20.0, process=None) -> None:
    """Wait until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A throwaway redis-server on a loopback port; yields its base URL (redis://host:port)."""
    binary = shutil.which("redis-server")
    if binary is None:
        need("redis-server")
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process=process)
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


_DB_INDEX = iter(range(1, 16))


@pytest.fixture
def redis_url(redis_server) -> str:
    """A Redis database of its own for this test (index 1..15)."""
    return f"{redis_server}/{next(_DB_INDEX)}"


def scale_env(*, data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a ragsite subprocess on tests.settings with its own data folder."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "RAGSITE_TEST_SUBPROCESS": "1",
        "RAGSITE_DATA_DIR": str(data_dir),
        "QDRANT_PATH": str(data_dir / "qdrant"),
        "QDRANT_COLLECTION": "test",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
