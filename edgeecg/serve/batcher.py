"""Micro-batching with back-pressure: pages that arrive within a few milliseconds share one ensemble call.

A bounded queue sits in front of one worker thread. `submit` never waits for room: a full queue raises
`Overloaded` at once (the service answers 503 with Retry-After), so memory stays bounded however many
requests arrive. The worker takes the first waiting page, gathers more for at most `max_wait_s` or until
`batch_size`, runs them through the classifier in one call and hands every caller its own result.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["MicroBatcher", "Overloaded"]


class Overloaded(Exception):
    """The queue is full: try again later."""


class MicroBatcher:
    """Groups single items into batches for `fn(items) -> results` (one result per item, same order).

    Args:
        fn: the batch function (the pipeline's classify).
        batch_size: the most items one call takes.
        max_wait_s: how long the first item of a batch waits for company.
        capacity: the most items waiting; beyond it `submit` raises Overloaded.
        on_batch: called with each batch's size (metrics).
    """

    def __init__(
        self,
        fn: Callable[[list[Any]], list[Any]],
        batch_size: int = 8,
        max_wait_s: float = 0.005,
        capacity: int = 64,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if batch_size < 1 or capacity < 1:
            raise ValueError("batch_size and capacity must be at least 1")
        self.fn, self.batch_size, self.max_wait_s = fn, batch_size, max_wait_s
        self.on_batch = on_batch
        self._queue: queue.Queue[tuple[Any, Future]] = queue.Queue(maxsize=capacity)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="edgeecg-batcher", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Items waiting now."""
        return self._queue.qsize()

    def submit(self, item: Any) -> Future:
        """Queue `item`; its result (or exception) arrives on the returned future.

        Raises:
            Overloaded: the queue is full, or the batcher is shutting down.
        """
        if self._closing.is_set():
            raise Overloaded("shutting down")
        fut: Future = Future()
        try:
            self._queue.put_nowait((item, fut))
        except queue.Full:
            raise Overloaded(f"{self._queue.maxsize} requests already waiting") from None
        return fut

    def close(self, timeout: float | None = None) -> None:
        """Stop taking items, finish every queued one, then stop the worker."""
        self._closing.set()
        self._thread.join(timeout)

    def _take(self) -> list[tuple[Any, Future]]:
        try:
            first = self._queue.get(timeout=0.05)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.batch_size:
            left = deadline - time.monotonic()
            try:
                batch.append(self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _loop(self) -> None:
        while not (self._closing.is_set() and self._queue.empty()):
            batch = self._take()
            if not batch:
                continue
            items = [item for item, _ in batch]
            futures = [f for _, f in batch if f.set_running_or_notify_cancel()]
            if self.on_batch is not None:
                self.on_batch(len(items))
            try:
                results = self.fn(items)
            except Exception as err:  # every waiting caller hears of it; the worker goes on
                log.exception("batch of %d failed", len(items))
                for f in futures:
                    f.set_exception(err)
                continue
            for (_, f), r in zip(batch, results, strict=True):
                if f.running():
                    f.set_result(r)
