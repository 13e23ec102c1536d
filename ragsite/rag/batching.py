"""A micro-batcher: concurrent embedding requests share one model run.

Under load many chats embed their question at the same moment. One ONNX run over 16
short queries costs little more than a run over one (the work is mostly per batch, and
the 2 cores are shared anyway), so instead of one thread hop and one run per question,
requests that arrive while a run is in flight, or within `window_s` of the first one,
are embedded together. With a single request the added wait is `window_s` (a few ms);
with one text per run (`run_size() == 1`) there is nothing to share and no wait.

The batcher keeps its queue per event loop (a test process runs several loops; a server
runs one) and at most one run in flight per loop: requests that arrive during a run
form the next batch, so batches grow with the load by themselves.

A batch goes to the model in runs of at most `run_size()` texts (the embedder's own
texts per ONNX run: 1 for the int8 graph, whose vectors must not depend on their batch),
all in one worker thread, and each caller gets its vectors as soon as the run that
holds them is done, not when the whole batch is: under a burst of 50 questions the
first no longer waits for the fiftieth.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .types import Vector

logger = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")

DEFAULT_WINDOW_S = 0.002
DEFAULT_MAX_BATCH = 64
# Query vectors kept by `RecentVectors` (~1.5 KB each), and the longest text kept.
RECENT_QUERIES = 4096
RECENT_MAX_CHARS = 2000


@dataclass
class _Pending:
    texts: list[str]
    future: asyncio.Future


@dataclass
class _LoopQueue:
    pending: list[_Pending] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None
    running: bool = False


class MicroBatcher:
    """Run `embed_sync` once for all texts that arrive together, in a worker thread."""

    def __init__(
        self,
        embed_sync: Callable[[Sequence[str]], list[Vector]],
        *,
        window_s: float = DEFAULT_WINDOW_S,
        max_batch: int = DEFAULT_MAX_BATCH,
        run_size: Callable[[], int] | None = None,
    ) -> None:
        self._embed_sync = embed_sync
        self._window_s = window_s
        self._max_batch = max_batch
        self._run_size = run_size or (lambda: max_batch)
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopQueue] = (
            weakref.WeakKeyDictionary()
        )

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        """Return one vector per text, embedded in a batch with other callers' texts."""
        items = list(texts)
        if not items:
            return []
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _LoopQueue()
        request = _Pending(items, loop.create_future())
        queue.pending.append(request)
        if not queue.running:
            if self._run_size() <= 1 or sum(len(p.texts) for p in queue.pending) >= self._max_batch:
                # One text per run (the int8 graph) shares nothing: no window to wait.
                self._start(loop, queue)
            elif queue.timer is None:
                queue.timer = loop.call_later(self._window_s, self._start, loop, queue)
        return await request.future

    def _start(self, loop: asyncio.AbstractEventLoop, queue: _LoopQueue) -> None:
        if queue.timer is not None:
            queue.timer.cancel()
            queue.timer = None
        batch, size = [], 0
        while queue.pending and (
            not batch or size + len(queue.pending[0].texts) <= self._max_batch
        ):
            request = queue.pending.pop(0)
            if request.future.cancelled():  # the reader left before its turn
                continue
            batch.append(request)
            size += len(request.texts)
        if not batch:
            return
        queue.running = True
        loop.create_task(self._run(loop, queue, batch))

    async def _run(
        self, loop: asyncio.AbstractEventLoop, queue: _LoopQueue, batch: list[_Pending]
    ) -> None:
        try:
            await asyncio.to_thread(self._embed_runs, loop, batch)
        except Exception as exc:  # the callers of the failed run (and after) get its error
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
        finally:
            queue.running = False
            if queue.pending:  # what arrived during this run is the next batch, at once
                self._start(loop, queue)

    def _embed_runs(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        """In the worker thread: embed `batch` run by run, handing each run's vectors to
        its callers on the loop as soon as it is done."""
        size = max(1, self._run_size())
        group: list[_Pending] = []
        count = 0
        for request in [*batch, None]:
            if group and (request is None or count + len(request.texts) > size):
                vectors = self._embed_sync([text for member in group for text in member.texts])
                loop.call_soon_threadsafe(_resolve, group, vectors)
                group, count = [], 0
            if request is not None and not request.future.cancelled():
                group.append(request)
                count += len(request.texts)


def _resolve(group: list[_Pending], vectors: list[Vector]) -> None:
    """On the loop: give each caller of one run its own vectors."""
    start = 0
    for request in group:
        end = start + len(request.texts)
        if not request.future.done():
            request.future.set_result(vectors[start:end])
        start = end


class RecentlyUsed(Generic[K, V]):
    """At most `max_entries` items, the least recently used forgotten first. Thread-safe."""

    def __init__(self, max_entries: int) -> None:
        self._items: OrderedDict[K, V] = OrderedDict()
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def get(self, keys: Sequence[K]) -> dict[K, V]:
        """The known items among `keys` (each marked as recently used)."""
        with self._lock:
            found = {key: self._items[key] for key in keys if key in self._items}
            for key in found:
                self._items.move_to_end(key)
        return found

    def put(self, keys: Sequence[K], values: Sequence[V]) -> None:
        """Remember these items, forgetting the least recently used beyond the size."""
        with self._lock:
            for key, value in zip(keys, values, strict=True):
                if self._keeps(key):
                    self._items[key] = value
                    self._items.move_to_end(key)
            while len(self._items) > self._max_entries:
                self._items.popitem(last=False)

    def _keeps(self, key: K) -> bool:
        return True


class RecentVectors(RecentlyUsed[str, Vector]):
    """The vectors of the most recently embedded texts (readers ask the same questions).

    Thread-safe; texts longer than `max_chars` are not kept (passages are not queries).
    """

    def __init__(self, max_entries: int = RECENT_QUERIES, max_chars: int = RECENT_MAX_CHARS):
        super().__init__(max_entries)
        self._max_chars = max_chars

    def _keeps(self, key: str) -> bool:
        return len(key) <= self._max_chars
