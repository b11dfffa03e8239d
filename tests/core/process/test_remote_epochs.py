"""Links and monitors across containers and the containers' epochs, on the
embedded broker and a fake clock: ending an epoch of a container ends the
links made with it, never one made with a newer epoch (S28's race,
deterministic; the rules are in L{ion.core.process.remote})."""

from __future__ import annotations

from typing import Any

import pytest

from ion.core import exception as exc
from ion.core.cc.membership import UP
from ion.core.process import signals
from ion.core.process.exit import NOCONNECTION
from tests.core.cc.agent_system import System, Watcher

STEP = 0.05  # fake seconds for the signals under way to arrive (well below k·H)


@pytest.fixture
def system() -> Any:
    s = System()
    yield s
    s.stop_all()


def _two(system: System) -> tuple[Any, Any, Any, Any]:
    """c1 and c2 up and met: (c1, c2, a Watcher of c1, a Watcher of c2)."""
    c1, c2 = system.start("c1"), system.start("c2")
    system.run(STEP)
    return c1, c2, system.wait(c1.spawn(Watcher)), system.wait(c2.spawn(Watcher))


def _new_epoch_unheard(system: System, c1: Any, c2: Any) -> None:
    """c1's broker connection is lost and comes back: it sends what it owed and
    joins again as epoch 1, while c2's agent is frozen (it meets epoch 1 only
    once thawed; c2's processes take their signals meanwhile)."""
    system.wait(c2.agent.freeze())
    lost = exc.ConnectionLostError("cut")
    c1.proc_manager._broker_lost(lost)
    c1.agent._connection_lost(lost)
    c1.proc_manager.remote.reconnected()
    c1.agent._reconnected()
    system.run(STEP)
    assert c1.agent.epoch == 1 and system.view("c2")["c1"] == (0, UP)


def _meet(system: System, c2: Any) -> None:
    system.wait(c2.agent.thaw())
    system.run(STEP)
    assert system.view("c2")["c1"] == (1, UP)


def test_a_link_made_with_a_new_epoch_outlives_the_old_one_ending(system: System) -> None:
    """S28: a (c1) is linked with b (c2); c1's connection is lost and back (each
    end sees noconnection once) and a links b anew, which b records before c2
    meets c1's epoch 1. Meeting it ends epoch 0, not the new link: b's exit
    then reaches a."""
    c1, c2, a, b = _two(system)
    a.link(b.id)
    system.run(STEP)
    _new_epoch_unheard(system, c1, c2)
    assert a.exits == [(str(b.id), NOCONNECTION)] and b.exits == [(str(a.id), NOCONNECTION)]
    a.link(b.id)
    system.run(STEP)
    assert b.links == {str(a.id)}
    _meet(system, c2)
    assert b.exits == [(str(a.id), NOCONNECTION)], "the new link ended with the old epoch"
    assert b.links == {str(a.id)}
    system.wait(c2.proc_manager.terminate(b, "error:Y"))
    system.run(STEP)
    assert a.exits[1:] == [(str(b.id), "error:Y")]


def test_a_link_asked_of_an_ended_epoch_ends_on_both_sides(system: System) -> None:
    """b (c2) links and monitors a (c1) after c1 joined again as epoch 1, before
    c2 meets it: a records neither (they were asked of epoch 0), and b's ends
    fire noconnection once c2 meets epoch 1. Asked again, they are recorded."""
    c1, c2, a, b = _two(system)
    _new_epoch_unheard(system, c1, c2)
    b.link(a.id)
    b.monitor(a.id)
    system.run(STEP)
    assert a.links == frozenset() and a._watchers == {}
    _meet(system, c2)
    assert b.exits == [(str(a.id), NOCONNECTION)] and b.downs == [(str(a.id), NOCONNECTION)]
    assert b.links == frozenset() and a.exits == []
    b.link(a.id)
    b.monitor(a.id)
    system.run(STEP)
    assert a.links == {str(b.id)} and len(a._watchers) == 1


def test_a_late_exit_of_an_earlier_link_ends_no_newer_one(system: System) -> None:
    """An exit signal sent under c1's epoch 0 (one it owed, say) that reaches b
    after b linked a anew, with c1's epoch 1, is dropped: the new link stays."""
    c1, c2, a, b = _two(system)
    a.link(b.id)
    system.run(STEP)
    _new_epoch_unheard(system, c1, c2)
    _meet(system, c2)
    b.link(a.id)
    system.run(STEP)
    assert a.links == {str(b.id)} and b.links == {str(a.id)}
    late = signals.send(c1, str(a.id), str(b.id), signals.EXIT, {"reason": NOCONNECTION}, 0)
    system.wait(late)
    system.run(STEP)
    assert b.links == {str(a.id)} and b.exits == [(str(a.id), NOCONNECTION)]
