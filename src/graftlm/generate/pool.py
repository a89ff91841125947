"""One pool of teacher requests for a whole run: bounded concurrency, later stages first, faults captured.

Every pipeline sends its requests through `RequestPool.chat`. At most `max_in_flight` requests run at
once; when several wait, the one with the lowest priority number (a later stage of some item's
pipeline) goes first, so items finish early and there is no barrier between stages. A failing request
(timeout, HTTP error after the client's retries, a local model error) comes back as a `Reply` with
`error` set, which the pipeline counts as a reject; it never ends the run.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from dataclasses import dataclass, field

from graftlm.judging import ChoiceVerdict, Scale, judge_by_probabilities
from graftlm.teacher.base import Message, SamplingOptions, Teacher
from graftlm.teacher.cache import request_key

log = logging.getLogger(__name__)


class PrioritySemaphore:
    """A semaphore whose waiters are served lowest priority number first (FIFO within a priority)."""

    def __init__(self, value: int) -> None:
        self._value = value
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    async def acquire(self, priority: int = 0) -> None:
        if self._value > 0 and not self._waiters:
            self._value -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._seq), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # granted, but the waiter was cancelled before it could run
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)
                return
        self._value += 1


@dataclass
class Reply:
    """The texts of one request, or the error that ended it."""

    texts: list[str] = field(default_factory=list)
    request_hash: str = ""
    error: str | None = None


class RequestPool:
    """Sends chat requests to one teacher with at most `max_in_flight` at once; measures utilisation."""

    def __init__(self, teacher: Teacher, max_in_flight: int) -> None:
        self.teacher = teacher
        self.max_in_flight = max_in_flight
        self._sem = PrioritySemaphore(max_in_flight)
        self.requests = 0
        self.cached = 0
        self.failures = 0
        self.first_error: str | None = None
        self._in_flight = 0
        self._busy = 0.0  # integral of requests in flight over time (request-seconds)
        self._t_last = time.perf_counter()
        self.t_start: float | None = None  # set by the first request

    def _tick(self, delta: int) -> None:
        now = time.perf_counter()
        self._busy += self._in_flight * (now - self._t_last)
        self._t_last = now
        self._in_flight += delta

    async def chat(self, messages: list[Message], options: SamplingOptions, priority: int = 0) -> Reply:
        if self.t_start is None:
            self.t_start = self._t_last = time.perf_counter()
        await self._sem.acquire(priority)
        self._tick(+1)
        try:
            result = await self.teacher.chat(messages, options)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # any teacher failure becomes a reject, never a crash
            self.failures += 1
            self.first_error = self.first_error or f"{type(e).__name__}: {e}"
            log.warning("teacher request failed: %s: %s", type(e).__name__, e)
            return Reply(error=type(e).__name__, request_hash=self.request_hash(messages, options))
        finally:
            self._tick(-1)
            self._sem.release()
        self.requests += 1
        self.cached += int(result.cached)
        return Reply(texts=list(result.texts), request_hash=result.request_hash or self.request_hash(messages, options))

    async def choose(self, messages: list[Message], scale: Scale, priority: int = 0) -> ChoiceVerdict | None:
        """A judge's verdict read from the probabilities of `scale`'s allowed replies (`graftlm.judging`);
        None when the teacher cannot report them or the request failed (the caller then judges in text)."""
        await self._sem.acquire(priority)
        self._tick(+1)
        try:
            return await judge_by_probabilities(self.teacher, messages, scale)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a failure here costs a text judgment, never the run
            log.warning("judging by probabilities failed: %s: %s", type(e).__name__, e)
            return None
        finally:
            self._tick(-1)
            self._sem.release()

    def request_hash(self, messages: list[Message], options: SamplingOptions) -> str:
        """The call cache's hash of this request, so failed or uncached calls are named the same way."""
        return request_key(self.teacher.model_id, messages, options)

    def stats(self) -> dict[str, float | str]:
        """Requests, failures, cache hits, and utilisation (mean in-flight over max_in_flight)."""
        self._tick(0)
        wall = max(1e-9, self._t_last - (self.t_start or self._t_last))
        return {
            "requests": self.requests,
            "cached": self.cached,
            "failures": self.failures,
            "first_error": self.first_error or "",
            "wall_s": round(wall, 3),
            "mean_in_flight": round(self._busy / wall, 2),
            "utilisation": round(self._busy / wall / self.max_in_flight, 4),
            "requests_per_s": round(self.requests / wall, 2),
        }
