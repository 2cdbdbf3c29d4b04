"""Background encoding: a worker thread computes image embeddings so clicking never waits on
an encoder pass that could have been done earlier.

Requests carry a priority (0 = the image the user opened, 1 = prefetch of the next ones); the
worker always takes the most urgent one. Prepared images stay in a small in-memory LRU; the
factory's own embedding cache makes re-preparing an evicted image cheap.
"""
from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Optional

import numpy as np

from clicksam.server.errors import AnnotatorError, NotReady

__all__ = ["EncodingWorker", "OPEN", "PREFETCH"]

OPEN = 0
PREFETCH = 1


class EncodingWorker:
    """Encodes images in one background thread.

    Args:
        prepare: ``prepare(name, image)`` -> prepared object (e.g. a predictor with the image set).
        load: ``load(name)`` -> HxWx3 uint8 image.
        capacity: prepared images kept in memory.
    """

    def __init__(self, prepare: Callable[[str, np.ndarray], Any], load: Callable[[str], np.ndarray],
                 capacity: int = 8) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._prepare, self._load, self.capacity = prepare, load, capacity
        self._cond = threading.Condition()
        self._heap: list[tuple[int, int, str]] = []
        self._queued: dict[str, int] = {}  # name -> best queued priority
        self._order = itertools.count()
        self._ready: OrderedDict[str, Any] = OrderedDict()
        self._encoded: set[str] = set()  # encoded at least once (embedding cached)
        self._failed: dict[str, tuple[str, Optional[AnnotatorError]]] = {}  # name -> (why, a 4xx to answer)
        self._current: Optional[str] = None
        self._current_since = 0.0
        self.seconds: dict[str, float] = {}
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="clicksam-encoder", daemon=True)
        self._thread.start()

    def request(self, name: str, priority: int = OPEN) -> str:
        """Queue ``name`` (or raise its priority); returns its status."""
        with self._cond:
            if name in self._ready or name == self._current:
                return self._status(name)
            if name in self._failed and priority == OPEN:
                del self._failed[name]  # the user asked again: retry
            if name in self._failed or self._queued.get(name, priority + 1) <= priority:
                return self._status(name)
            self._queued[name] = priority
            heapq.heappush(self._heap, (priority, next(self._order), name))
            self._cond.notify_all()
            return self._status(name)

    def get(self, name: str, timeout: float) -> Any:
        """The prepared image, queueing it first; waits up to ``timeout`` seconds.

        Raises:
            NotReady: still encoding after ``timeout``, or the encoding failed.
        """
        self.request(name, OPEN)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if name in self._ready:
                    self._ready.move_to_end(name)
                    return self._ready[name]
                if name in self._failed:
                    why, answer = self._failed[name]
                    if answer is not None:  # e.g. an unreadable file: a 422, not "retry later"
                        raise answer
                    raise NotReady(f"encoding {name!r} failed: {why}")
                if name not in self._queued and name != self._current:
                    self._queued[name] = OPEN  # evicted meanwhile: queue it again
                    heapq.heappush(self._heap, (OPEN, next(self._order), name))
                    self._cond.notify_all()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise NotReady(f"image {name!r} is still being encoded; try again in a moment")
                self._cond.wait(left)

    def _status(self, name: str) -> str:
        if name in self._ready:
            return "ready"
        if name == self._current:
            return "encoding"
        if name in self._failed:
            return "failed"
        if name in self._queued:
            return "queued"
        return "cached" if name in self._encoded else "new"

    def status(self, name: str) -> str:
        """``new``, ``queued``, ``encoding``, ``ready`` (in memory), ``cached`` (on disk) or ``failed``."""
        with self._cond:
            return self._status(name)

    def error(self, name: str) -> Optional[str]:
        """Why encoding ``name`` failed, if it did."""
        with self._cond:
            return self._failed[name][0] if name in self._failed else None

    def forget(self, name: str) -> None:
        """Drop the prepared image (its file changed): the next request prepares it again."""
        with self._cond:
            self._ready.pop(name, None)
            self._encoded.discard(name)
            self._failed.pop(name, None)

    def mark_failed(self, name: str, error: AnnotatorError) -> None:
        """Record that ``name`` cannot be prepared (e.g. an unreadable file found by a request):
        its status is ``failed``, with the reason, until it is opened again."""
        with self._cond:
            self._failed[name] = (error.message, error if error.status < 500 else None)
            self._cond.notify_all()

    def summary(self) -> dict[str, Any]:
        """Progress for the page: what is encoding (and for how long) and the queue length."""
        with self._cond:
            return {"encoding": self._current,
                    "encoding_s": round(time.monotonic() - self._current_since, 1) if self._current else 0.0,
                    "queued": len(self._queued), "in_memory": len(self._ready),
                    "encoded": len(self._encoded), "failed": len(self._failed)}

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker thread (the current encoding finishes first)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _next(self) -> Optional[str]:
        with self._cond:
            while not self._stopping:
                while self._heap:
                    priority, _, name = heapq.heappop(self._heap)
                    if self._queued.get(name) == priority:
                        del self._queued[name]
                        self._current, self._current_since = name, time.monotonic()
                        return name
                self._cond.wait()
            return None

    def _run(self) -> None:
        while (name := self._next()) is not None:
            started = time.monotonic()
            try:
                prepared, error = self._prepare(name, self._load(name)), None
            except AnnotatorError as exc:
                prepared, error = None, (exc.message, exc if exc.status < 500 else None)
            except Exception as exc:  # a bad file or a model error must not kill the worker
                prepared, error = None, (f"{type(exc).__name__}: {exc}", None)
            with self._cond:
                self._current = None
                if error is None:
                    self._ready[name] = prepared
                    self._encoded.add(name)
                    self.seconds[name] = time.monotonic() - started
                    while len(self._ready) > self.capacity:
                        self._ready.popitem(last=False)
                else:
                    self._failed[name] = error
                self._cond.notify_all()
