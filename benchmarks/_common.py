"""Helpers shared by the benchmark scripts: the machine, percentiles, a real server.

Every benchmark prints the machine it ran on (this VM is shared and noisy, so the load
average matters as much as the core count) and can write its figures as JSON. Servers
are real `manage.py serve` processes bound to 127.0.0.1 with their own temporary data
folder, so a benchmark never touches the developer's index.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO_DIR = Path(__file__).resolve().parent.parent
BOOKS_DIR = REPO_DIR.parent / "shared" / "books"
TEXTBOOK_DIR = BOOKS_DIR / "physical-ai-humanoid-robotics"
RUST_BOOK_DIR = BOOKS_DIR / "rust-book"
QUESTIONS_FILE = REPO_DIR / "benchmarks" / "questions" / "textbook.jsonl"
RESULTS_DIR = REPO_DIR / "benchmarks" / "results"

# Environment variables that change what the server does. A benchmark must not inherit
# them from the developer's shell (an OpenAI key would turn the extractive default into
# paid LLM calls), so they are dropped before the server's own values are set.
_CONFIG_PREFIXES = (
    "OPENAI_", "QDRANT_", "EMBEDDING_", "LLM_", "CHAT_", "SEARCH_", "CHUNK_",
    "RETRIEVAL_", "SITE_", "INGEST_", "CORS_", "VECTOR_",
)  # fmt: skip
_CONFIG_NAMES = {"SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "BOOK_DIR", "PORT", "RAGSITE_DATA_DIR"}
# Generous enough that no benchmark request is ever rate limited.
UNLIMITED_RATE = "1000000/m"


# --- the machine -----------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _ram_gb() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def _git_commit() -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_DIR,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return out.stdout.strip() or None
    return None


def load_average() -> list[float]:
    """Return the 1, 5 and 15 minute load averages (rounded)."""
    return [round(value, 2) for value in os.getloadavg()]


def machine() -> dict[str, Any]:
    """Describe the machine and the moment: cores, CPU, RAM, Python, load, commit."""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "ram_gb": _ram_gb(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average": load_average(),
        "commit": _git_commit(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def machine_line(info: Mapping[str, Any] | None = None) -> str:
    """One line for the top of a benchmark's output."""
    info = info or machine()
    load = " ".join(f"{value:.2f}" for value in info["load_average"])
    return (
        f"machine: {info['cpus']} CPUs ({info['cpu_model']}), {info['ram_gb']} GB RAM, "
        f"{info['os']}, Python {info['python']}, load average {load}, "
        f"commit {info['commit']}, {info['when']}"
    )


# --- statistics --------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values: Sequence[float], digits: int = 1) -> dict[str, Any]:
    """{n, p50, p95, mean, max} of a list of milliseconds (None when empty)."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "mean": None, "max": None}
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), digits),
        "p95": round(percentile(values, 95), digits),
        "mean": round(sum(values) / len(values), digits),
        "max": round(max(values), digits),
    }


def fmt_ms(value: float | None) -> str:
    """A millisecond figure for a table: '12.3', '1,234' or '–'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


# --- output ------------------------------------------------------------------------------


def write_json(path: Path | str, data: Mapping[str, Any]) -> None:
    """Write figures as indented JSON, creating the folder."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"figures written to {out}")


# --- book text ---------------------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)


def book_words(*folders: Path) -> list[str]:
    """Every whitespace-separated word of the books' Markdown/MDX pages, in file order."""
    words: list[str] = []
    for folder in folders:
        for path in sorted(folder.rglob("*.md*")):
            text = _FRONT_MATTER.sub("", path.read_text(encoding="utf-8", errors="replace"))
            words.extend(text.split())
    if not words:
        raise SystemExit(f"no book text under {', '.join(map(str, folders))}")
    return words


def textbook_questions() -> list[str]:
    """The reader questions of the textbook question set (benchmarks/questions)."""
    lines = QUESTIONS_FILE.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()]


# --- memory of a process -----------------------------------------------------------------


def process_memory_mb(pid: int) -> dict[str, float | None]:
    """VmRSS (now) and VmHWM (peak since start or last reset) of a process, in MB."""
    found: dict[str, float | None] = {"rss_mb": None, "hwm_mb": None}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                key = "rss_mb" if name == "VmRSS" else "hwm_mb"
                found[key] = round(int(value.split()[0]) / 1024, 1)
    return found


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system, all threads) a process has used so far; None if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak_memory(pid: int) -> bool:
    """Reset a process's VmHWM to its current RSS (Linux clear_refs 5); False if refused."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# --- a real server -----------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(
    *, data_dir: Path, book_dir: Path, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a benchmark server: ours only, with rate limits out of the way."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_CONFIG_PREFIXES) and name not in _CONFIG_NAMES
    }
    env.update(
        {
            "RAGSITE_SKIP_DOTENV": "1",
            "RAGSITE_DATA_DIR": str(data_dir),
            "BOOK_DIR": str(book_dir),
            "EMBEDDING_PROVIDER": "local",
            "LLM_PROVIDER": "extractive",
            "CHAT_RATE_LIMIT": UNLIMITED_RATE,
            "SEARCH_RATE_LIMIT": UNLIMITED_RATE,
            "LOG_LEVEL": "warning",
            "DJANGO_SETTINGS_MODULE": "ragsite.settings",
        }
    )
    env.update(extra or {})
    return env


@dataclass
class Server:
    """A `manage.py serve` subprocess on a loopback port."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    started_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        """The server's process id (uvicorn runs inside the manage.py process)."""
        return self.process.pid

    def memory(self) -> dict[str, float | None]:
        """The server's current and peak resident memory in MB."""
        return process_memory_mb(self.pid)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the server wrote (for error messages)."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 20.0) -> None:
        """Ask the server to stop (SIGINT, as Ctrl+C), then insist."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def server_start(
    *,
    data_dir: Path,
    book_dir: Path,
    ingest: str = "never",
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 180.0,
) -> Server:
    """Start `manage.py serve` on a free loopback port and wait until it answers.

    `ingest` is serve's --ingest (if-empty, always, never). The wait ends when
    /api/health answers at all (200 or 503): opening a large embedded store takes a
    while, and an empty index is a 503, which is fine for a benchmark that fills it.
    """
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "server.log"
    env = server_env(data_dir=data_dir, book_dir=book_dir, extra=extra_env)
    command = [
        sys.executable,
        str(REPO_DIR / "manage.py"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ingest",
        ingest,
    ]
    started = time.perf_counter()
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own manage.py, fixed arguments
            command, cwd=REPO_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    server = Server(process=process, url=f"http://127.0.0.1:{port}", log_path=log_path)
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5.0) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the server exited with {process.returncode}:\n{server.log_tail()}"
                )
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(
                    f"the server did not answer within {timeout:.0f} s:\n{server.log_tail()}"
                )
            try:
                client.get(f"{server.url}/api/health")
                break
            except httpx.TransportError:
                time.sleep(0.2)
    server.started_s = round(time.perf_counter() - started, 2)
    return server


@contextlib.contextmanager
def running_server(**kwargs: Any) -> Iterator[Server]:
    """`server_start(...)` as a context manager that always stops the server."""
    server = server_start(**kwargs)
    try:
        yield server
    finally:
        server.stop()


def ingestion_wait(url: str, *, timeout: float = 1800.0) -> dict[str, Any] | None:
    """Poll /api/ingest/status until the latest ingestion ends; return its task.

    None when there is no task at all (serve --ingest if-empty found an index).
    """
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=10.0) as client:
        while time.monotonic() < deadline:
            response = client.get(f"{url}/api/ingest/status")
            if response.status_code == 404:
                return None
            if response.status_code == 200:
                task = response.json()
                if task.get("status") in ("succeeded", "failed", "cancelled"):
                    return task
            time.sleep(0.5)
    raise RuntimeError(f"the ingestion did not finish within {timeout:.0f} s")


def index_summary(url: str) -> dict[str, Any]:
    """The `index` part of /api/health (documents, chunks, ...) plus the store's points."""
    health = httpx.get(f"{url}/api/health", timeout=30.0).json()
    return {**health.get("index", {}), "points": health["checks"]["vector_store"].get("points")}
