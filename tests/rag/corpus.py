"""The small corpus every store test searches, and the child that probes a held folder.

Dense order for QUERY_VECTOR: cameras (1.0) > lidar (0.8) > filters (0.6) > legs (0.0).
Sparse order for QUERY_TEXT: lidar > filters; cameras and legs share no term with it.
"""

from __future__ import annotations

import math
import os
import random
import re
import subprocess
import sys
from pathlib import Path

from ragsite.rag.types import Chunk, chunk_id, sha256_text
from tests.conftest import REPO_DIR, TEXTBOOK_DIR, whole_book


def make_chunk(path: str, text: str, position: int = 0) -> Chunk:
    """A chunk as ingestion would build it (stable id from path and content)."""
    digest = sha256_text(text)
    return Chunk(
        id=chunk_id(path, digest),
        text=text,
        body=text,
        title=Path(path).stem.title(),
        heading="",
        path=path,
        url=f"https://book.example/docs/{Path(path).stem}",
        position=position,
        content_hash=digest,
        token_count=len(text.split()),
    )


def unit(*values: float) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


QUERY_TEXT = "lidar point cloud"
QUERY_VECTOR = unit(1, 0, 0, 0)

CORPUS = {
    "cameras": (
        make_chunk("sensors/cameras.md", "Cameras capture colour images of the scene."),
        unit(1, 0, 0, 0),
    ),
    "lidar": (
        make_chunk(
            "sensors/lidar.md", "Lidar returns a point cloud: each lidar point carries a range."
        ),
        unit(0.8, 0.6, 0, 0),
    ),
    "filters": (
        make_chunk("processing/filters.md", "A point cloud can be downsampled with a voxel grid."),
        unit(0.6, 0.8, 0, 0),
    ),
    "legs": (
        make_chunk("control/legs.md", "Legged robots keep their balance with feedback control."),
        unit(0, 0, 1, 0),
    ),
}


def names(hits) -> list[str]:
    by_id = {chunk.id: name for name, (chunk, _) in CORPUS.items()}
    return [by_id[hit.chunk.id] for hit in hits]


LOCK_PROBE = """
import django
django.setup()
from ragsite.rag import providers
from ragsite.rag.exceptions import VectorStoreLocked
try:
    print(providers.get_store().count())
except VectorStoreLocked as exc:
    print(exc)
    raise SystemExit(3)
"""


def probe_from_another_process(
    data_dir: Path, store_dir: Path, engine: str
) -> subprocess.CompletedProcess:
    """Run LOCK_PROBE in a fresh Python process on these folders with this engine."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "RAGSITE_TEST_SUBPROCESS": "1",
        "RAGSITE_DATA_DIR": str(data_dir),
        "QDRANT_PATH": str(store_dir),
        "QDRANT_COLLECTION": "test",
        "VECTOR_ENGINE": engine,
    }
    return subprocess.run(
        [sys.executable, "-c", LOCK_PROBE],
        cwd=REPO_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def book_corpus(n: int = 150):
    """n consecutive pieces of textbook text with random 4-d vectors, and 8 queries.

    The pieces do not overlap and vary in length, so no two chunks get the same BM25
    score for a query: the engines order equal scores differently, and a tie would
    make "the same order" meaningless. The whole textbook is such a corpus; the vendored
    books are not (their repeated listings and short pages tie), so the tests that use
    it are in the whole-book tier (tests/conftest.py).
    """
    words = []
    for path in sorted(whole_book(TEXTBOOK_DIR).rglob("*.md*")):
        words.extend(re.findall(r"\S+", path.read_text(encoding="utf-8", errors="replace")))
    rng = random.Random(7)
    chunks, vectors, start = [], [], 0
    for i in range(n):
        size = 40 + i % 37
        text = " ".join(words[start : start + size])
        chunks.append(make_chunk(f"book/{i % 15}.md", text, i))
        vectors.append(unit(*(rng.gauss(0, 1) for _ in range(4))))
        start += size
    queries = [" ".join(words[s : s + 5]) for s in (rng.randrange(0, start - 5) for _ in range(8))]
    return chunks, vectors, queries
