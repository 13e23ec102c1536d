"""Run every benchmark, one after another, and collect their figures in one JSON file.

Each benchmark runs as its own process (its own Django settings, its own temporary
data folder) with `--json`; its output is shown and also kept in
benchmarks/results/<name>.log. The figures land in benchmarks/results/latest.json
together with the machine, the load average before and after, the commands and how
long each took; then plot.py redraws docs/img/bench-*.png from it. A benchmark that
fails is recorded as failed and the others still run.

    uv run python benchmarks/run_all.py                  # everything (about 30-60 min here)
    uv run python benchmarks/run_all.py --quick          # smaller sizes and levels
    uv run python benchmarks/run_all.py --only chat_load search_api
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    QUESTIONS_FILE,
    REPO_DIR,
    RESULTS_DIR,
    TEXTBOOK_DIR,
    load_average,
    machine,
    machine_line,
    write_json,
)

BENCH_DIR = REPO_DIR / "benchmarks"
ENGINES = ["qdrant-local", "qdrant-edge"]


def available_engines() -> list[str] | None:
    """The embedded engines to compare, or None when VECTOR_ENGINE does not exist (yet)."""
    settings_text = (REPO_DIR / "ragsite" / "settings.py").read_text(encoding="utf-8")
    if "VECTOR_ENGINE" not in settings_text or importlib.util.find_spec("qdrant_edge") is None:
        return None
    return ENGINES


def _accepts_json(script: Path) -> bool:
    """Whether a benchmark script has a --json option (older ones only print)."""
    help_text = subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, str(script), "--help"],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return "--json" in help_text


def plan(*, quick: bool, engines: list[str] | None, work: Path) -> list[tuple[str, list[str]]]:
    """(name, command without --json) for every benchmark, in running order.

    `work` is a folder that lives for the whole run (data shared between benchmarks).
    """
    engine_args = [arg for engine in engines or [] for arg in ("--engine", engine)]
    search_sizes = ["1000", "10000"] if quick else ["1000", "10000", "100000"]
    levels = ["1", "10", "50"] if quick else ["1", "10", "50", "200"]
    commands: list[tuple[str, list[str]]] = [
        ("ingest", [str(BENCH_DIR / "ingest.py")]),
        (
            "search_store",
            [str(BENCH_DIR / "search_store.py"), "--sizes", *search_sizes[:2]]
            + (["--engine", "both"] if engines else []),
        ),
        (
            "search_api",
            [str(BENCH_DIR / "search_api.py"), "--sizes", *search_sizes, *engine_args]
            + (["--queries", "40"] if quick else []),
        ),
    ]
    for engine in engines or [None]:
        suffix = f"_{engine}" if engine else ""
        # chat_load indexes the textbook into this folder and leaves it for the
        # breakdown, which then needs no ingestion of its own.
        data = str(work / f"chat{suffix}")
        engine_arg = ["--engine", engine] if engine else []
        command = [
            str(BENCH_DIR / "chat_load.py"),
            "--levels",
            *levels,
            "--data",
            data,
            *engine_arg,
        ]
        if quick:
            command += ["--rounds", "2"]
        commands.append((f"chat_load{suffix}", command))
        commands.append(
            (
                f"chat_breakdown{suffix}",
                [str(BENCH_DIR / "chat_breakdown.py"), "--data", data, "--profile", *engine_arg],
            )
        )
    commands.append(
        (
            "retrieval",
            [
                str(REPO_DIR / "manage.py"),
                "eval_retrieval",
                str(QUESTIONS_FILE.relative_to(REPO_DIR)),
                "--book",
                str(TEXTBOOK_DIR),
                "--baselines",
            ],
        )
    )
    return commands


def run_one(name: str, command: list[str], *, results_dir: Path, data_dir: Path) -> dict[str, Any]:
    """Run one benchmark with --json (when it has it); its figures or its failure."""
    out = results_dir / f"{name}.json"
    out.unlink(missing_ok=True)
    script = Path(command[0])
    if not script.exists():
        return {"status": "missing", "command": command}
    with_json = script.name == "manage.py" or _accepts_json(script)
    full = [sys.executable, *command] + (["--json", str(out)] if with_json else [])
    shown = " ".join(["uv run python", *[_relative(part) for part in full[1:]]])
    print(f"\n=== {name}: {shown}", flush=True)
    log_path = results_dir / f"{name}.log"
    started = time.perf_counter()
    load_before = load_average()
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(  # noqa: S603 - our own scripts
            full,
            cwd=REPO_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_env(data_dir),
        )
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            log.write(line)
        returncode = process.wait()
    entry: dict[str, Any] = {
        "status": "ok" if returncode == 0 else "failed",
        "command": shown,
        "seconds": round(time.perf_counter() - started, 1),
        "load_average_before": load_before,
        "log": _relative(str(log_path)),
    }
    if returncode != 0:
        entry["returncode"] = returncode
    if out.exists():
        entry["figures"] = json.loads(out.read_text(encoding="utf-8"))
    elif returncode == 0:
        entry["figures"] = None  # printed only; see the log
    return entry


def _relative(part: str) -> str:
    try:
        return str(Path(part).resolve().relative_to(REPO_DIR))
    except ValueError:
        return part


def _env(data_dir: Path) -> dict[str, str]:
    """The environment of a benchmark: no LLM or remote Qdrant, a throw-away data folder.

    The servers and ingest.py set their own data folders; eval_retrieval indexes into a
    temporary collection but Django still opens RAGSITE_DATA_DIR (SQLite, secret key).
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("OPENAI_", "QDRANT_", "LLM_", "EMBEDDING_"))
    }
    env["RAGSITE_SKIP_DOTENV"] = "1"
    env["RAGSITE_DATA_DIR"] = str(data_dir)
    return env


def main() -> None:
    """Run the planned benchmarks, write latest.json, redraw the plots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer levels")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    parser.add_argument(
        "--out", type=Path, default=RESULTS_DIR / "latest.json", help="the collected figures"
    )
    parser.add_argument("--no-plot", action="store_true", help="do not redraw docs/img/bench-*.png")
    args = parser.parse_args()

    info = machine()
    print(machine_line(info))
    engines = available_engines()
    results_dir = args.out.parent
    results_dir.mkdir(parents=True, exist_ok=True)
    previous: dict[str, Any] = {}
    if args.only and args.out.exists():
        # A partial run updates the figures it re-measured and keeps the others.
        previous = json.loads(args.out.read_text(encoding="utf-8")).get("benchmarks", {})
    started = time.perf_counter()
    benchmarks = dict(previous)
    with tempfile.TemporaryDirectory(prefix="ragsite-bench-run-") as work:
        for name, command in plan(quick=args.quick, engines=engines, work=Path(work)):
            if args.only and not any(name.startswith(wanted) for wanted in args.only):
                continue
            with tempfile.TemporaryDirectory(prefix=f"ragsite-bench-{name}-") as data_dir:
                benchmarks[name] = run_one(
                    name, command, results_dir=results_dir, data_dir=Path(data_dir)
                )
    write_json(
        args.out,
        {
            "machine": info,
            "load_average_end": load_average(),
            "quick": args.quick,
            "engines": engines,
            "seconds": round(time.perf_counter() - started, 1),
            "benchmarks": benchmarks,
        },
    )
    failed = [name for name, entry in benchmarks.items() if entry["status"] != "ok"]
    print(machine_line())
    if failed:
        print(f"not ok: {', '.join(failed)}")
    if not args.no_plot:
        subprocess.run(  # noqa: S603 - our own script
            [sys.executable, str(BENCH_DIR / "plot.py"), str(args.out)], cwd=REPO_DIR, check=False
        )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
