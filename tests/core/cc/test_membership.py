"""The failure detector of one container's view of its peers, on a fake clock:
deadline, probe, hard limit, goodbye, epochs and the ended list (A8, A9)."""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from ion.core.cc.membership import DEAD, LEFT, SUSPECT, UP, Membership, Peer

H, K = 0.2, 3


class View:
    """A membership on a fake clock, with a probe the test answers."""

    def __init__(self, held: bool | None = True, **kw: Any) -> None:
        self.clock = Clock()
        self.held = held  # what the probe says; None: it does not answer
        self.probes: list[str] = []
        self.changes: list[tuple[str, int, str | None, str]] = []
        self.m = Membership(self.clock, "me", self._probe, self._changed, **kw)

    def _probe(self, peer: Peer) -> Deferred[bool]:
        self.probes.append(peer.cid)
        return succeed(self.held) if self.held is not None else Deferred()

    def _changed(self, peer: Peer, old: str | None, why: str) -> None:
        self.changes.append((peer.cid, peer.epoch, old, peer.state))

    def beat(self, cid: str = "c2", epoch: int = 0, **extra: Any) -> Peer | None:
        content = {"cid": cid, "epoch": epoch, "interval": H, "dead_after": K, **extra}
        return self.m.heard(content, lambda c, e: f"s.cc.{c}.{e}")

    def state(self, cid: str = "c2") -> str:
        return self.m.peers[cid].state


def test_heard_peer_is_up_and_own_traffic_is_ignored() -> None:
    v = View()
    assert v.beat("me") is None
    assert v.beat().state == UP  # type: ignore[union-attr]
    assert v.changes == [("c2", 0, None, UP)]


def test_silence_for_k_intervals_makes_a_peer_suspect_and_a_held_queue_keeps_it_so() -> None:
    v = View(held=True)
    v.beat()
    v.clock.advance(K * H - 0.01)
    assert v.state() == UP
    v.clock.advance(0.01)
    assert v.state() == SUSPECT
    assert v.probes == ["c2"]  # probed at once
    v.clock.advance(H)
    assert v.probes == ["c2", "c2"]  # and every interval while suspect
    assert v.state() == SUSPECT
    v.beat()
    assert v.state() == UP
    v.clock.advance(H * 2)
    assert v.probes == ["c2", "c2"], "no probing once it is heard again"


def test_a_gone_queue_confirms_the_suspicion_dead() -> None:
    v = View(held=False)
    v.beat()
    v.clock.advance(K * H)
    assert v.state() == DEAD
    assert v.changes[-2:] == [("c2", 0, UP, SUSPECT), ("c2", 0, SUSPECT, DEAD)]
    assert v.m.dead_digest() == [["c2", 0]]


def test_the_hard_limit_declares_a_held_but_silent_peer_dead() -> None:
    v = View(held=True)
    v.beat()
    v.clock.advance(K * H)
    v.clock.pump([H] * (3 * K - 1) + [H - 0.001])  # suspect_max defaults to 3kH
    assert v.state() == SUSPECT
    assert len(v.probes) == 3 * K  # held, every interval
    v.clock.advance(0.002)
    assert v.state() == DEAD
    assert "suspect_max" in v.m.peers["c2"].why


def test_suspect_max_is_configurable() -> None:
    v = View(held=None, suspect_max=1.0)
    v.beat()
    v.clock.advance(K * H)
    v.clock.advance(0.99)
    assert v.state() == SUSPECT
    v.clock.advance(0.01)
    assert v.state() == DEAD


def test_a_presence_notice_makes_a_peer_dead_at_once() -> None:
    v = View()
    v.beat()
    v.m.queue_gone("s.cc.c2.0")
    assert v.state() == DEAD
    assert v.probes == []


def test_goodbye_makes_a_peer_left_without_suspicion() -> None:
    v = View()
    v.beat()
    v.m.goodbye("c2", 0)
    assert v.state() == LEFT
    assert [c[3] for c in v.changes] == [UP, LEFT]
    assert v.m.dead_digest() == []  # only DEAD ones are told to others
    v.clock.advance(10 * K * H)
    assert v.state() == LEFT, "no deadline runs for a peer that left"


def test_traffic_of_an_ended_epoch_is_dropped_and_counted() -> None:
    """A9: a heartbeat from a DEAD epoch does not bring it back UP."""
    v = View(held=False)
    v.beat()
    v.clock.advance(K * H)
    assert v.state() == DEAD
    assert v.beat() is None
    assert v.beat(seq=7) is None
    assert v.state() == DEAD and v.m.dropped == 2


def test_a_new_epoch_ends_the_old_and_is_up() -> None:
    v = View()
    v.beat(epoch=0)
    peer = v.beat(epoch=1)
    assert peer is not None and peer.state == UP and peer.epoch == 1
    assert ("c2", 0, UP, DEAD) in v.changes
    assert v.beat(epoch=0) is None and v.m.dropped == 1  # the old one's late heartbeat


def test_ended_epochs_are_forgotten_after_ttl_dead() -> None:
    v = View(held=False, ttl_dead=5.0)
    v.beat()
    v.clock.advance(K * H)
    assert v.m.dead_digest() == [["c2", 0]]
    v.clock.advance(5.0)
    assert v.m.dead_digest() == []
    assert "c2" not in v.m.peers


def test_pause_stops_judging_and_resume_counts_from_now() -> None:
    v = View(held=False)
    v.beat()
    v.m.pause()
    v.clock.advance(10 * K * H)
    assert v.state() == UP
    v.m.resume()
    v.clock.advance(K * H - 0.01)
    assert v.state() == UP
    v.clock.advance(0.01)
    assert v.state() == DEAD


def test_no_false_suspicion_under_jitter() -> None:
    """A8: 200 heartbeats, each sent H late by a random 0-0.5·H: never SUSPECT."""
    rng = random.Random(8)
    v = View(held=False)
    v.beat()
    sent = 0.0
    for seq in range(1, 201):
        due = seq * H + rng.uniform(0, 0.5 * H)  # on time, then delayed
        v.clock.advance(max(0.0, due - sent))
        sent = max(sent, due)
        v.beat(seq=seq)
    assert [c for c in v.changes if c[3] != UP] == []
    assert v.m.peers["c2"].seq == 200


def test_a_stalled_container_reads_what_waited_before_it_suspects() -> None:
    """Its own deadlines ran late (it was stopped, or its reactor blocked): it
    gives each peer one interval more, so heartbeats waiting to be read count."""
    v = View(held=True)
    v.beat()
    v.clock.advance(5 * K * H)  # one late turn of the reactor, far past the deadline
    assert v.state() == UP
    v.beat(seq=1)  # what waited in the queue
    v.clock.advance(H)
    assert v.state() == UP
    v.clock.advance(5 * K * H)  # stalled again: again a grace, then suspect
    assert v.state() == UP
    v.clock.advance(H)
    assert v.state() == SUSPECT, "silence after the grace is suspicious"
