"""Run one benchmark on a baseline commit and on this tree, back to back, and print the ratios.

The machine is shared and noisy, so a figure means something only beside another one
measured in the same run. This script extracts the baseline with `git archive` into a
temporary folder (its own virtualenv, made with `uv sync --frozen`), runs the benchmark
there and here with the same arguments, and prints both figures and their ratio:

    uv run python benchmarks/compare.py chat_load.py --levels 50 200
    uv run python benchmarks/compare.py search_api.py --sizes 10000
    uv run python benchmarks/compare.py ingest.py

`--baseline REV` picks the commit (default 5566198, the code as the speed issue found it);
`--keep DIR` keeps the extracted baseline for the next run; `--json OUT` writes both
runs' figures and the comparison.

Without `--engine` each tree runs with its own default embedded engine (the baseline's
was qdrant-local, this tree's is qdrant-edge): that is what the speed issue compares.
The engine each tree used is printed with the figures; `--engine E` runs both with E.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_DIR = Path(__file__).resolve().parent.parent
DEFAULT_BASELINE = "5566198"


def _uv() -> str:
    found = shutil.which("uv") or str(REPO_DIR / ".tools" / "bin" / "uv")
    if not Path(found).exists():
        raise SystemExit("uv is needed (./bin/test installs it into .tools/)")
    return found


def extract(rev: str, target: Path) -> Path:
    """Put the tree of `rev` into `target` (once) with its own virtualenv."""
    if not (target / "manage.py").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", rev], cwd=REPO_DIR, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "x"], cwd=target, input=archive, check=True)
    subprocess.run([_uv(), "sync", "--frozen", "--quiet"], cwd=target, check=True)
    return target


def engine_of(tree: Path, args: list[str]) -> str:
    """The VECTOR_ENGINE a benchmark in `tree` runs with: `--engine` if given, else the tree's default.

    The benchmark servers drop VECTOR_* from the environment, so the default is the one
    in the tree's settings (qdrant-local when the setting does not exist yet).
    """
    for i, arg in enumerate(args):
        if arg == "--engine" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--engine="):
            return arg.split("=", 1)[1]
    env = {name: value for name, value in os.environ.items() if not name.startswith("VECTOR_")}
    env.update({"RAGSITE_SKIP_DOTENV": "1", "DJANGO_SETTINGS_MODULE": "ragsite.settings"})
    code = "from django.conf import settings; print(getattr(settings, 'VECTOR_ENGINE', 'qdrant-local'))"
    found = subprocess.run(
        [_uv(), "run", "--frozen", "python", "-c", code],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    return found.stdout.strip() or "unknown"


def run(tree: Path, script: str, args: list[str], out: Path) -> dict[str, Any]:
    """Run benchmarks/<script> in `tree` with its own environment; return its --json figures."""
    print(f"\n=== {script} in {tree}", flush=True)
    command = [
        _uv(),
        "run",
        "--frozen",
        "python",
        f"benchmarks/{script}",
        *args,
        "--json",
        str(out),
    ]
    subprocess.run(command, cwd=tree, check=True)
    return json.loads(out.read_text())


def _levels(figures: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {row["streams"]: row for row in figures.get("levels", [])}


def rows(script: str, base: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """The figures worth comparing for each benchmark: (what, baseline, this tree)."""
    out: list[tuple[str, Any, Any]] = []
    if script.startswith("chat_load"):
        old_levels, new_levels = _levels(base), _levels(new)
        for streams in sorted(set(old_levels) & set(new_levels)):
            old, cur = old_levels[streams], new_levels[streams]
            out += [
                (f"{streams} streams: answers/s", old["answers_per_s"], cur["answers_per_s"]),
                (
                    f"{streams} streams: sources p95 ms",
                    old["sources_ms"]["p95"],
                    cur["sources_ms"]["p95"],
                ),
                (
                    f"{streams} streams: first token p95 ms",
                    old["first_token_ms"]["p95"],
                    cur["first_token_ms"]["p95"],
                ),
                (f"{streams} streams: errors", old["errors"], cur["errors"]),
            ]
        out.append(
            ("RSS at rest MB", base.get("server_rss_at_rest_mb"), new.get("server_rss_at_rest_mb"))
        )
    elif script.startswith("search_api"):
        key = lambda r: (r["size"], r["engine"])  # noqa: E731
        old = {key(r): r for r in base.get("results", [])}
        for row in new.get("results", []):
            if key(row) in old:
                out.append(
                    (
                        f"/api/search p50 ms, {row['size']} chunks, {row['engine']}",
                        old[key(row)]["http_ms"]["p50"],
                        row["http_ms"]["p50"],
                    )
                )
    elif script.startswith("ingest"):
        # A run or a memory figure the baseline's script did not measure shows as None.
        old = {r["run"]: r for r in base.get("results", [])}
        for row in new.get("results", []):
            before = old.get(row["run"], {})
            out.append((f"{row['run']}: seconds", before.get("seconds"), row["seconds"]))
            out.append((f"{row['run']}: chunks/s", before.get("chunks_per_s"), row["chunks_per_s"]))
            out.append((f"{row['run']}: RSS after MB", before.get("rss_mb"), row.get("rss_mb")))
        out.append(
            (
                "RSS at rest MB",
                base.get("resting", {}).get("rss_mb"),
                new.get("resting", {}).get("rss_mb"),
            )
        )
    return out


def _ratio(old: Any, new: Any) -> str:
    if not isinstance(old, int | float) or not isinstance(new, int | float) or not old:
        return "-"
    return f"{new / old:.2f}x"


def main() -> None:
    """Parse the options, run the baseline then this tree, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("script", help="a benchmarks/ script, e.g. chat_load.py")
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="baseline commit")
    parser.add_argument("--keep", type=Path, help="folder to keep the baseline tree in")
    parser.add_argument(
        "--json",
        dest="json_out",
        type=Path,
        help="write both runs' figures and the comparison to this file",
    )
    args, rest = parser.parse_known_args()
    with tempfile.TemporaryDirectory(prefix="ragsite-compare-") as tmp:
        tmp_path = Path(tmp)
        baseline = extract(args.baseline, args.keep or tmp_path / "baseline")
        engines = (engine_of(baseline, rest), engine_of(REPO_DIR, rest))
        print(f"engine: {engines[0]} in {args.baseline}, {engines[1]} in this tree", flush=True)
        base = run(baseline, args.script, rest, tmp_path / "baseline.json")
        new = run(REPO_DIR, args.script, rest, tmp_path / "new.json")
    # The engine a chat_load server reported in /api/health, where it reports one.
    reported = (base.get("engine_reported") or engines[0], new.get("engine_reported") or engines[1])
    table = [("engine", *reported), *rows(args.script, base, new)]
    width = max((len(what) for what, _, _ in table), default=10)
    print(f"\n{'':{width}}  {args.baseline:>10}  {'this tree':>10}  ratio")
    for what, old, cur in table:
        print(f"{what:{width}}  {old!s:>10}  {cur!s:>10}  {_ratio(old, cur)}")
    sys.stdout.flush()
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        comparison = [
            {"what": what, "baseline": old, "this_tree": cur, "ratio": _ratio(old, cur)}
            for what, old, cur in table
        ]
        args.json_out.write_text(
            json.dumps(
                {
                    "benchmark": f"compare {args.script}",
                    "baseline_commit": args.baseline,
                    "arguments": rest,
                    "comparison": comparison,
                    "baseline": base,
                    "this_tree": new,
                },
                indent=2,
            )
        )
        print(f"figures written to {args.json_out}")


if __name__ == "__main__":
    main()
