"""Bounded waits, on a fake clock."""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.task import Clock

from ion.core.deadline import ended_within


def waiting(d: defer.Deferred, timeout: float, clock: Clock) -> defer.Deferred:
    return defer.ensureDeferred(ended_within(d, timeout, clock))


def test_work_that_ends_in_time_says_so_whatever_its_outcome() -> None:
    clock = Clock()
    ok, failing = defer.Deferred(), defer.Deferred()
    waits = [waiting(ok, 5, clock), waiting(failing, 5, clock)]
    clock.advance(4.9)
    ok.callback("done")
    failing.errback(RuntimeError("its own error, reported elsewhere"))
    assert [w.result for w in waits] == [True, True]
    assert clock.getDelayedCalls() == []


def test_work_past_the_deadline_is_cancelled_and_the_wait_ends() -> None:
    clock = Clock()
    cancelled: list[defer.Deferred] = []
    work = defer.Deferred(cancelled.append)
    wait = waiting(work, 5, clock)
    clock.advance(4.9)
    assert not wait.called and cancelled == []
    clock.advance(0.1)
    assert wait.result is False and cancelled == [work]


def test_cancelling_the_wait_cancels_the_work() -> None:
    clock = Clock()
    cancelled: list[defer.Deferred] = []
    work = defer.Deferred(cancelled.append)
    wait = waiting(work, 5, clock)
    wait.cancel()
    failures: list = []
    wait.addErrback(failures.append)
    assert failures and failures[0].check(defer.CancelledError)
    assert cancelled == [work] and clock.getDelayedCalls() == []
