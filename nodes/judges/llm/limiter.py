"""Adaptive concurrency of LLM requests (AIMD): as many in flight as the provider tolerates.

A fixed bound is either too low (a 20-session batch waits in line: at 16 slots, 180 calls of
300 ms take 12 round trips) or too high for a hosted endpoint's rate limit (every request
answered 429, retried, and answered 429 again). So the bound adapts, like TCP's congestion
window:
- it starts at the configured maximum (LLM_MAX_CONCURRENCY);
- a 429 halves it (multiplicative decrease), once per congestion event: the requests that
  were already in flight when it was halved do not halve it again;
- the server's Retry-After pauses every new request until it has passed (the failed
  attempt's own retry waits at least as long, see `nodes.judges.llm.retry`);
- each success adds 1/limit (additive increase: one more slot per window of successes),
  never above the maximum.
`in_flight` and `peak_in_flight` let benchmarks and logs report the effective concurrency.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import weakref
from types import TracebackType

logger = logging.getLogger(__name__)


class Slot:
    """One request's permit; report its outcome with `rate_limited` before leaving."""

    __slots__ = ("_limiter", "epoch")

    def __init__(self, limiter: AdaptiveLimiter, epoch: int) -> None:
        self._limiter = limiter
        self.epoch = epoch

    def rate_limited(self, retry_after_s: float | None) -> None:
        """The request was answered 429: shrink the window (once per event) and pause."""
        self._limiter.on_rate_limited(self.epoch, retry_after_s)

    def succeeded(self) -> None:
        """The request got a reply: grow the window a little."""
        self._limiter.on_success()


class AdaptiveLimiter:
    """An AIMD-sized semaphore for one event loop (see the module docstring)."""

    def __init__(self, maximum: int, minimum: int = 1) -> None:
        """Start with `maximum` slots; never go below `minimum`."""
        if maximum < 1 or not 1 <= minimum <= maximum:
            raise ValueError(f"need 1 <= minimum <= maximum (got {minimum}, {maximum})")
        self.maximum = maximum
        self.minimum = minimum
        self.window = float(maximum)
        self.in_flight = 0
        self.peak_in_flight = 0
        self.rate_limited_count = 0
        self._epoch = 0  # bumped by each decrease: slots taken before it do not decrease again
        self._paused_until = 0.0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def limit(self) -> int:
        """The current number of slots."""
        return max(self.minimum, int(self.window))

    async def acquire(self) -> Slot:
        """Wait for a free slot (and for a Retry-After pause to pass); return the permit."""
        while True:
            pause = self._paused_until - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
                continue
            if self.in_flight < self.limit and not self._waiters:
                break
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif not waiter.cancelled():
                    self._wake()  # we were woken but leave: pass the turn on
                raise
            if self.in_flight < self.limit:
                break
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        return Slot(self, self._epoch)

    def release(self) -> None:
        """Give a slot back and let the next waiters in."""
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        free = self.limit - self.in_flight
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1

    def on_success(self) -> None:
        """Additive increase: +1 slot after `limit` successes."""
        if self.window < self.maximum:
            self.window = min(float(self.maximum), self.window + 1.0 / self.limit)
            self._wake()

    def on_rate_limited(self, epoch: int, retry_after_s: float | None) -> None:
        """Multiplicative decrease (once per congestion event) and the Retry-After pause."""
        self.rate_limited_count += 1
        if retry_after_s:
            self._paused_until = max(self._paused_until, time.monotonic() + retry_after_s)
        if epoch != self._epoch:
            return  # in flight before the last decrease: the same congestion event
        self._epoch += 1
        before = self.limit
        self.window = max(float(self.minimum), self.window / 2)
        logger.info("LLM rate limited: concurrency %d -> %d", before, self.limit)

    async def __aenter__(self) -> Slot:
        """`async with limiter as slot:` acquires; leaving releases."""
        return await self.acquire()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        """Release the slot."""
        self.release()


class ConcurrencyLimit:
    """An `AdaptiveLimiter` of at most `limit` slots per event loop, shared by one judge.

    Waiters are futures of one loop; a judge that outlives one loop (a CLI calling
    `asyncio.run` twice, pytest loops) gets a fresh limiter in each.
    """

    def __init__(self, limit: int) -> None:
        """At most `limit` requests in flight."""
        if limit < 1:
            raise ValueError(f"concurrency limit must be >= 1 (got {limit})")
        self.limit = limit
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AdaptiveLimiter]
        self._by_loop = weakref.WeakKeyDictionary()

    def limiter(self) -> AdaptiveLimiter:
        """The limiter of the running event loop."""
        loop = asyncio.get_running_loop()
        limiter = self._by_loop.get(loop)
        if limiter is None:
            limiter = self._by_loop[loop] = AdaptiveLimiter(self.limit)
        return limiter
