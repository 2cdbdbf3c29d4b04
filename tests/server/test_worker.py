"""The encoding worker's priorities, failures, timeouts and retries."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from clicksam.server.errors import NotReady
from clicksam.server.worker import OPEN, PREFETCH, EncodingWorker


def test_worker_runs_the_opened_image_before_prefetch():
    gate, order = threading.Event(), []

    def prepare(name, image):
        gate.wait(5)
        order.append(name)
        return name.upper()

    worker = EncodingWorker(prepare, lambda name: np.zeros((2, 2, 3), np.uint8), capacity=2)
    try:
        worker.request("busy", OPEN)
        time.sleep(0.1)  # "busy" is being encoded, held at the gate
        for name in ("p1", "p2"):
            assert worker.request(name, PREFETCH) == "queued"
        worker.request("wanted", OPEN)
        assert worker.status("busy") == "encoding" and worker.summary()["queued"] == 3
        gate.set()
        deadline = time.monotonic() + 5
        while len(order) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert order == ["busy", "wanted", "p1", "p2"]
        assert worker.get("p2", 5) == "P2"  # already encoded: no re-ordering any more
        assert worker.status("busy") == "cached"  # evicted from memory (capacity 2), embedding cached
        assert worker.get("busy", 5) == "BUSY" and order[-1] == "busy"  # re-prepared on demand
    finally:
        worker.stop()


def test_worker_failure_timeout_and_retry():
    attempts = []

    def prepare(name, image):
        attempts.append(name)
        if name == "slow":
            time.sleep(0.5)
        if len(attempts) == 1:
            raise OSError("disk on fire")
        return name

    worker = EncodingWorker(prepare, lambda name: np.zeros((2, 2, 3), np.uint8))
    try:
        with pytest.raises(NotReady, match="disk on fire"):
            worker.get("bad", 5)
        assert worker.status("bad") == "failed" and "disk on fire" in worker.error("bad")
        assert worker.get("bad", 5) == "bad"  # opening again retries
        with pytest.raises(NotReady, match="still being encoded"):
            worker.get("slow", 0.05)
        assert worker.get("slow", 5) == "slow"
    finally:
        worker.stop()

