"""The adaptive (AIMD) concurrency limiter of LLM requests."""

from __future__ import annotations

import asyncio
import time

import pytest

from nodes.judges.llm.limiter import AdaptiveLimiter, ConcurrencyLimit


async def _hold(limiter: AdaptiveLimiter, seconds: float) -> None:
    async with limiter:
        await asyncio.sleep(seconds)


async def test_starts_at_the_bound_and_never_exceeds_it() -> None:
    limiter = AdaptiveLimiter(4)
    assert limiter.limit == 4
    await asyncio.gather(*(_hold(limiter, 0.02) for _ in range(12)))
    assert limiter.peak_in_flight == 4 and limiter.in_flight == 0


async def test_a_429_halves_once_per_congestion_event() -> None:
    limiter = AdaptiveLimiter(16)
    slots = [await limiter.acquire() for _ in range(8)]
    for slot in slots:  # eight replies of the same burst say 429: one decrease
        slot.rate_limited(None)
        limiter.release()
    assert limiter.limit == 8 and limiter.rate_limited_count == 8
    later = await limiter.acquire()  # taken after the decrease: a new event halves again
    later.rate_limited(None)
    limiter.release()
    assert limiter.limit == 4


async def test_the_window_shrinks_to_the_minimum_not_below() -> None:
    limiter = AdaptiveLimiter(4, minimum=1)
    for _ in range(5):
        slot = await limiter.acquire()
        slot.rate_limited(None)
        limiter.release()
    assert limiter.limit == 1


async def test_successes_grow_the_window_back_slowly_up_to_the_bound() -> None:
    limiter = AdaptiveLimiter(8)
    slot = await limiter.acquire()
    slot.rate_limited(None)
    limiter.release()
    assert limiter.limit == 4
    for _ in range(3):  # fewer successes than the window: no new slot yet
        slot = await limiter.acquire()
        slot.succeeded()
        limiter.release()
    assert limiter.limit == 4
    for _ in range(200):
        slot = await limiter.acquire()
        slot.succeeded()
        limiter.release()
    assert limiter.limit == 8 and limiter.window == 8.0


async def test_a_smaller_window_bounds_what_is_in_flight() -> None:
    limiter = AdaptiveLimiter(8)
    slot = await limiter.acquire()
    slot.rate_limited(None)  # 8 -> 4 while one is in flight
    limiter.release()
    await asyncio.gather(*(_hold(limiter, 0.02) for _ in range(10)))
    assert limiter.peak_in_flight == 4


async def test_retry_after_pauses_new_requests() -> None:
    limiter = AdaptiveLimiter(4)
    slot = await limiter.acquire()
    slot.rate_limited(0.3)
    limiter.release()
    began = time.monotonic()
    async with limiter:
        pass
    assert time.monotonic() - began >= 0.29


async def test_a_cancelled_waiter_gives_its_turn_away() -> None:
    limiter = AdaptiveLimiter(1)
    first = await limiter.acquire()
    cancelled = asyncio.create_task(limiter.acquire())
    queued = asyncio.create_task(_hold(limiter, 0.0))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    limiter.release()
    await asyncio.wait_for(queued, 1.0)  # not stuck behind the cancelled waiter
    assert limiter.in_flight == 0 and first.epoch == 0


def test_bounds_are_validated() -> None:
    with pytest.raises(ValueError):
        AdaptiveLimiter(0)
    with pytest.raises(ValueError):
        AdaptiveLimiter(4, minimum=5)
    with pytest.raises(ValueError):
        ConcurrencyLimit(0)


def test_one_limiter_per_event_loop() -> None:
    limit = ConcurrencyLimit(3)

    async def get() -> AdaptiveLimiter:
        return limit.limiter()

    first, second = asyncio.run(get()), asyncio.run(get())
    assert first is not second and first.maximum == second.maximum == 3
