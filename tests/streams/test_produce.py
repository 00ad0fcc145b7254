"""``transitwatch produce``'s rate limiter on a simulated clock (no real time involved)."""

from __future__ import annotations

import pytest

from transitwatch.streams.produce import RateLimiter


class Clock:
    """A clock that sleeps are added to, each one overslept by ``late`` (as ``asyncio.sleep`` does)."""

    def __init__(self, late: float = 0.0) -> None:
        self.now = 100.0
        self.late = late

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds + self.late


def sends_within(limit: RateLimiter, clock: Clock, seconds: float, work: float = 0.0) -> int:
    """Sends made in ``seconds`` of simulated time; each send itself takes ``work`` seconds."""
    start, sent = clock.now, 0
    while True:
        limit.wait_sync()
        if clock.now - start >= seconds:
            return sent
        sent += 1
        clock.now += work


@pytest.mark.parametrize("late", [0.0, 0.0003, 0.001, 0.002])
def test_the_rate_asked_for_is_delivered_although_every_sleep_oversleeps(late):
    clock = Clock(late)
    limit = RateLimiter(2000, clock=clock, sleep=clock.sleep)
    # 2,000/s over 10 s is 20,000 sends; an oversleep is made up by the sends after it (all but
    # the last one, which ends the 10 s). A limiter that restarts its schedule when late gives
    # 7,969 here with 2 ms oversleeps.
    assert sends_within(limit, clock, 10.0, work=0.00001) == pytest.approx(20_000, abs=2 + late * 2000)


def test_never_faster_than_the_rate():
    clock = Clock()
    limit = RateLimiter(500, clock=clock, sleep=clock.sleep)
    assert sends_within(limit, clock, 4.0) == pytest.approx(2_000, abs=1)  # 0 s to 4.0 s inclusive


def test_after_a_stall_at_most_a_burst_goes_back_to_back():
    clock = Clock()
    limit = RateLimiter(1000, clock=clock, sleep=clock.sleep, burst=50)
    for _ in range(10):
        limit.wait_sync()
    clock.now += 5.0  # the broker was slow: 5,000 sends behind
    immediate = 0
    while limit.delay() <= 0:
        immediate += 1
    assert immediate == pytest.approx(50, abs=1), "the backlog beyond one burst is forgiven, not flooded"


def test_the_default_burst_is_a_tenth_of_a_second():
    assert RateLimiter(2000).burst == 200 and RateLimiter(2).burst == 1


@pytest.mark.parametrize("kwargs", [{"rate": 0}, {"rate": float("inf")}, {"rate": 10, "burst": 0.5}])
def test_bad_parameters_fail_at_once(kwargs):
    with pytest.raises(ValueError):
        RateLimiter(**kwargs)
