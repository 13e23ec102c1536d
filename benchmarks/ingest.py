"""Ingestion throughput on the Rust book (112 pages): from scratch, unchanged, one file changed.

Runs the real pipeline (`book_ingest`: parsing, chunking, the packaged embedding model,
the embedded Qdrant store, SQLite) in a fresh temporary data folder, on a temporary copy
of the book (the third run appends a paragraph to one page of the copy). The embedder is
wrapped to time the calls into it, so the report shows how much of an ingestion is
embedding and how much is everything else (the ratio total / embedder; 1.0 would mean
the rest costs nothing or fully overlaps with embedding). The process's resident memory
(RSS) is read before the first run (model loaded, store open: the resting figure) and
after each run, with the peak (VmHWM).

    uv run python benchmarks/ingest.py
    uv run python benchmarks/ingest.py --book ../shared/books/physical-ai-humanoid-robotics
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_DIR))
# tests.settings: a clean environment and a fresh temporary RAGSITE_DATA_DIR.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from ingestion.models import DocumentChunk  # noqa: E402
from ingestion.services import book_ingest  # noqa: E402
from ingestion.services.pipeline import memory_release  # noqa: E402
from ragsite.rag import providers  # noqa: E402
from ragsite.rag.config import get_config  # noqa: E402

DEFAULT_BOOK = REPO_DIR.parent / "shared" / "books" / "rust-book"
CHANGED_PARAGRAPH = (
    "\n\nA note added by the benchmark: this paragraph exists so that exactly one page of "
    "the book changes between two runs, and only its new chunks are embedded again.\n"
)


def memory_mb() -> dict[str, float | None]:
    """This process's resident memory now and at its peak, in MB (Linux /proc)."""
    values: dict[str, float | None] = {"rss_mb": None, "peak_rss_mb": None}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in {"VmRSS", "VmHWM"}:
                name = "rss_mb" if key == "VmRSS" else "peak_rss_mb"
                values[name] = round(int(rest.split()[0]) / 1024, 1)
    except OSError:
        pass
    return values


class TimedEmbedder:
    """The real embedder, with the seconds spent inside it counted."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.provider, self.model, self.dimension = inner.provider, inner.model, inner.dimension
        self.seconds = 0.0
        self.texts = 0

    def embed_sync(self, texts: Sequence[str]) -> list[list[float]]:
        started = time.perf_counter()
        try:
            return self.inner.embed_sync(texts)
        finally:
            self.seconds += time.perf_counter() - started
            self.texts += len(texts)


def machine() -> dict[str, object]:
    """Cores, CPU model and load: the numbers mean little without them."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {"cores": os.cpu_count(), "cpu": model, "load_1m": round(load[0], 2),
            "python": platform.python_version()}  # fmt: skip


def run(book: Path, label: str) -> dict[str, object]:
    """One ingestion as the server runs it: with an embedder of its own, dropped after."""
    embedder = TimedEmbedder(providers.get_ingestion_embedder())
    started = time.perf_counter()
    task = book_ingest(book_dir=book, source="manage.py", embedder=embedder)
    seconds = time.perf_counter() - started
    embedder_seconds, texts = embedder.seconds, embedder.texts
    del embedder  # its session (and onnxruntime's arena) goes, as after a server's run
    memory_release()
    if task.status != "succeeded":
        raise SystemExit(f"{label}: ingestion {task.status}: {task.errors}")
    chunks = DocumentChunk.objects.count()
    return {
        "run": label,
        "seconds": round(seconds, 2),
        "files": task.files_total,
        "chunks": chunks,
        "chunks_per_s": round(chunks / seconds, 1),
        "embeddings_computed": task.embeddings_computed,
        "tokens_embedded": task.tokens_embedded,
        "embedder_seconds": round(embedder_seconds, 2),
        "embedded_per_s_inside_embedder": (
            round(texts / embedder_seconds, 1) if embedder_seconds else None
        ),
        "total_over_embedder": round(seconds / embedder_seconds, 2) if embedder_seconds else None,
        "files_changed": task.files_changed,
        **memory_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--book", type=Path, default=DEFAULT_BOOK, help="book folder")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    book = args.book.resolve()
    if not book.is_dir():
        raise SystemExit(f"no book at {book}")

    call_command("migrate", verbosity=0)
    load_started = time.perf_counter()
    embedder = TimedEmbedder(providers.get_embedder())
    load_seconds = time.perf_counter() - load_started
    config = get_config()
    print(f"machine: {machine()}")
    print(f"book: {book} | data: {config.data_dir} | batch {config.embedding_batch_size}, "
          f"chunks of {config.chunk_tokens} tokens | model loaded in {load_seconds:.2f}s")  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="ragsite-bench-book-") as folder:
        copy = Path(folder) / book.name
        shutil.copytree(book, copy, ignore=shutil.ignore_patterns(".*"))
        providers.get_store()  # opened before the resting figure, like a serving process
        embedder.embed_sync(["warm-up"])
        resting = memory_mb()
        print(f"resting: {resting['rss_mb']} MB RSS (model loaded, store open)")
        results = [run(copy, "from scratch"), run(copy, "unchanged")]
        pages = sorted(p for p in copy.rglob("*.md*") if p.is_file())
        changed = pages[len(pages) // 2]
        with changed.open("a", encoding="utf-8") as handle:
            handle.write(CHANGED_PARAGRAPH)
        results.append(run(copy, "one file changed"))
    for result in results:
        print(
            f"{result['run']:>16}: {result['seconds']:7.2f} s, {result['files']} files, "
            f"{result['chunks']} chunks ({result['chunks_per_s']} chunks/s), "
            f"{result['embeddings_computed']} embeddings computed, "
            f"embedder {result['embedder_seconds']} s, total/embedder {result['total_over_embedder']}, "
            f"RSS {result['rss_mb']} MB (peak {result['peak_rss_mb']} MB)"
        )
    print(f"changed page: {changed.relative_to(copy)}")
    if args.json:
        args.json.write_text(
            json.dumps({"machine": machine(), "resting": resting, "results": results}, indent=2)
        )
    providers.reset()


if __name__ == "__main__":
    main()
