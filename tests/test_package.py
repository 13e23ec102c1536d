"""What importing the `ragsite` package does to the process before anything else loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
SHOW = "import ragsite, os; print(os.environ['OPENBLAS_NUM_THREADS'])"


def _run(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if env_value is not None:
        env["OPENBLAS_NUM_THREADS"] = env_value
    done = subprocess.run(
        [sys.executable, "-c", SHOW], cwd=REPO_DIR, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_numpys_blas_runs_on_one_thread_unless_the_operator_says_otherwise():
    # Its threads spin after each product: a search's small products cost ~10x the CPU.
    assert _run(None) == "1"
    assert _run("2") == "2"
