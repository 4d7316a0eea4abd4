"""The client-side rate limit (kubeclient/ratelimit.py): a token bucket whose urgent callers
go first. A clock the test moves: tokens come only when it says so."""

from __future__ import annotations

import asyncio
import threading

import pytest

from modelrollout.harness.process import wait_for
from modelrollout.kubeclient.ratelimit import URGENT, RateLimiter, urgent


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def taker(limiter: RateLimiter, taken: list[str], name: str, is_urgent: bool = False) -> threading.Thread:
    def take() -> None:
        limiter.acquire(is_urgent)
        taken.append(name)

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    return thread


def test_a_burst_at_once_then_one_token_per_interval():
    clock = Clock()
    limiter = RateLimiter(qps=2, burst=3, clock=clock)
    for _ in range(3):
        assert limiter.acquire() == 0.0
    taken: list[str] = []
    threads = [taker(limiter, taken, f"call {i}") for i in range(2)]
    wait_for(lambda: all(t.is_alive() for t in threads), 5, "two calls waiting")
    assert taken == []  # no token: both wait
    clock.now += 0.5  # one token at 2 a second
    wait_for(lambda: len(taken) == 1, 5, "one call let through")
    clock.now += 0.5
    wait_for(lambda: len(taken) == 2, 5, "the second call let through")
    for thread in threads:
        thread.join(5)


def test_an_urgent_call_goes_before_ordinary_ones_already_waiting():
    clock = Clock()
    limiter = RateLimiter(qps=1, burst=1, clock=clock)
    limiter.acquire()
    taken: list[str] = []
    ordinary = [taker(limiter, taken, f"ordinary {i}") for i in range(3)]
    wait_for(lambda: all(t.is_alive() for t in ordinary), 5, "three ordinary calls waiting")
    rollback = taker(limiter, taken, "rollback", is_urgent=True)
    wait_for(lambda: limiter._urgent_waiting == 1, 5, "the urgent call waiting")
    clock.now += 1.0  # one token
    wait_for(lambda: taken, 5, "a call let through")
    assert taken == ["rollback"]
    for count in (2, 3, 4):  # a bucket of one: one token per second, never more at once
        clock.now += 1.0
        wait_for(lambda: len(taken) == count, 5, f"{count} calls let through")  # noqa: B023
    assert sorted(taken[1:]) == ["ordinary 0", "ordinary 1", "ordinary 2"]
    for thread in [*ordinary, rollback]:
        thread.join(5)


def test_urgency_comes_from_the_context_through_asyncio_to_thread():
    assert URGENT.get() is False

    async def main() -> list[bool]:
        with urgent():
            inside = await asyncio.to_thread(URGENT.get)
        outside = await asyncio.to_thread(URGENT.get)
        return [inside, outside]

    assert asyncio.run(main()) == [True, False]


@pytest.mark.parametrize(("qps", "burst"), [(0, 1), (-1, 5), (10, 0)])
def test_a_limit_that_lets_nothing_through_is_refused(qps, burst):
    with pytest.raises(ValueError, match="qps > 0 and burst >= 1"):
        RateLimiter(qps=qps, burst=burst)
