"""The one backoff policy of informers: doubling steps, capped, each wait from the upper half."""

from __future__ import annotations

import random

from modelrollout.kubeclient import Backoff
from modelrollout.kubeclient.backoff import FIRST_SECONDS, MAX_SECONDS


def test_each_failure_doubles_the_step_up_to_the_cap_and_waits_from_its_upper_half():
    backoff = Backoff()
    steps = [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    for step in steps:
        pause = backoff.pause()
        assert step / 2 <= pause <= step
    assert (steps[0], steps[-1]) == (FIRST_SECONDS, MAX_SECONDS)


def test_a_reset_starts_over_at_the_first_step():
    backoff = Backoff(0.2, 5.0)
    for _ in range(6):
        backoff.pause()
    backoff.reset()
    assert 0.1 <= backoff.pause() <= 0.2
    assert 0.2 <= backoff.pause() <= 0.4


def test_clients_that_fail_together_do_not_retry_together():
    random.seed(7)
    first = [Backoff().pause() for _ in range(200)]
    assert max(first) - min(first) > 0.2  # spread over most of [0.25, 0.5]
    assert len(set(first)) == len(first)
