"""A real uvicorn server on a loopback port, in a thread of the test process.

It runs in-process so it shares the test database and the embedded Qdrant client
(local mode allows one opener per folder and process)."""

from __future__ import annotations

import threading
import time

import uvicorn


class _NoSettingsChange:
    """pytest-django's autouse `_live_server_helper` calls `enable()`/`disable()` on
    `_live_server_modified_settings` of any fixture named `live_server`; ours needs no
    settings change (tests.settings allows every host), so both do nothing."""

    def enable(self) -> None:
        """Nothing to change."""

    def disable(self) -> None:
        """Nothing to restore."""


class LiveServer:
    """uvicorn serving `ragsite.asgi:application` on 127.0.0.1, started and stopped by tests."""

    def __init__(self, app: str = "ragsite.asgi:application") -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="live-uvicorn", daemon=True)
        self.url = ""
        self._live_server_modified_settings = _NoSettingsChange()

    def start(self, timeout: float = 20.0) -> LiveServer:
        """Start serving and wait until the socket is bound."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for its thread."""
        self.server.should_exit = True
        self.thread.join(timeout=10)
