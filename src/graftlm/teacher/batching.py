"""Collect concurrent generation requests and run them as one batched call in a worker thread.

`LocalTeacher` and `graft serve` submit rows (one prompt, one sample each); the batcher waits a few
milliseconds for company, then hands up to `max_batch` rows to `run_batch` in its own thread. While a
batch runs, new rows queue up and form the next batch, so throughput grows with concurrency.

Requests are served oldest first: each call starts with the request that has waited longest, then takes
the later ones that `fits` allows beside it (for a model: rows whose prompts and answers fit the context
together, within a bound on the call's work). A request that does not fit waits for a later call without
holding up the others, and, being older, leads the next one, so nobody waits for ever.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

RowT = TypeVar("RowT")
OutT = TypeVar("OutT")


@dataclass
class _Job(Generic[RowT, OutT]):
    rows: list[RowT]
    future: cf.Future[list[OutT]]


class Batcher(Generic[RowT, OutT]):
    """Runs `run_batch(rows) -> outputs` (same length, same order) on batches of submitted rows.

    `wait_s` is how long the batcher waits for one more request (from the first, or the latest to
    arrive), `straggler_s` how long it waits while fewer rows are queued than the previous batch had
    (its clients are coming back);
    `max_batch` caps the rows of one call (a request's rows are never split over two calls unless it
    alone exceeds it). `fits(rows)` says whether rows may share one call (default: always); a request is
    added to a call only if it keeps the call fitting, and one that does not fit even alone runs alone.
    `batch_sizes` records the number of rows of every call made, for tests and benchmarks."""

    def __init__(self, run_batch: Callable[[list[RowT]], Sequence[OutT]], *, max_batch: int = 32,
                 wait_s: float = 0.005, straggler_s: float = 0.05, name: str = "graft-batcher",
                 fits: Callable[[list[RowT]], bool] | None = None) -> None:
        self.run_batch = run_batch
        self.max_batch = max(1, max_batch)
        self.wait_s = wait_s
        self.straggler_s = straggler_s
        self.fits = fits or (lambda rows: True)
        self._last_size = 1
        self.name = name
        self.batch_sizes: list[int] = []
        self._queue: queue.Queue[_Job[RowT, OutT] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def calls(self) -> int:
        return len(self.batch_sizes)

    def submit(self, rows: list[RowT]) -> cf.Future[list[OutT]]:
        """Queue rows; the future resolves to their outputs (or the exception `run_batch` raised)."""
        fut: cf.Future[list[OutT]] = cf.Future()
        if not rows:
            fut.set_result([])
            return fut
        with self._lock:
            if self._closed:
                raise RuntimeError("batcher is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()
        self._queue.put(_Job(list(rows), fut))
        return fut

    async def run(self, rows: list[RowT]) -> list[OutT]:
        """Submit rows and await their outputs without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(rows))

    def run_sync(self, rows: list[RowT]) -> list[OutT]:
        return self.submit(rows).result()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=60)

    def _loop(self) -> None:
        waiting: deque[_Job[RowT, OutT]] = deque()  # taken from the queue, not yet run, oldest first
        stop = False
        while True:
            if not waiting:
                if stop:
                    return
                job = self._queue.get()
                if job is None:
                    return
                waiting.append(job)
            first = waiting.popleft()
            jobs, rows = [first], list(first.rows)
            later: deque[_Job[RowT, OutT]] = deque()
            for job in waiting:
                if self._joins(rows, job):
                    jobs.append(job)
                    rows.extend(job.rows)
                else:
                    later.append(job)
            waiting = later
            start = last = time.monotonic()
            while not stop and len(rows) < self.max_batch:
                # Clients answered by the last batch come back one by one: wait a little longer for them;
                # after that, keep collecting while requests arrive less than `wait_s` apart.
                if len(rows) < self._last_size:
                    deadline = start + max(self.wait_s, self.straggler_s)
                else:
                    deadline = last + self.wait_s
                timeout = deadline - time.monotonic()
                try:
                    nxt = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                elif self._joins(rows, nxt):
                    jobs.append(nxt)
                    rows.extend(nxt.rows)
                    last = time.monotonic()
                else:
                    waiting.append(nxt)
            self._last_size = len(rows)
            self._run_jobs(jobs)

    def _joins(self, rows: list[RowT], job: _Job[RowT, OutT]) -> bool:
        """Whether `job` may join a call that already holds `rows`."""
        return len(rows) + len(job.rows) <= self.max_batch and self.fits(rows + job.rows)

    def _run_jobs(self, jobs: list[_Job[RowT, OutT]]) -> None:
        live = [j for j in jobs if j.future.set_running_or_notify_cancel()]
        if not live:
            return
        rows = [r for j in live for r in j.rows]
        self.batch_sizes.append(len(rows))
        try:
            outs = list(self.run_batch(rows))
            if len(outs) != len(rows):
                raise RuntimeError(f"batch function returned {len(outs)} outputs for {len(rows)} rows")
        except BaseException as e:  # hand every failure to the callers, keep the thread alive
            log.debug("batch of %d rows failed: %s", len(rows), e)
            for j in live:
                j.future.set_exception(e)
            return
        i = 0
        for j in live:
            j.future.set_result(outs[i:i + len(j.rows)])
            i += len(j.rows)
