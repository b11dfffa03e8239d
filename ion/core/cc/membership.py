"""The containers of a system as one container sees them, and their failure detection.

Each peer is known by container id and epoch (its broker connection's
generation). Its heartbeats re-arm a deadline of k of I{its own} intervals
(the Orbitalis idea: the sender says how often it beats); a missed deadline
makes it SUSPECT, and the broker is then asked every interval whether its
agent queue is still held (L{Membership} is given the probe). The whole
state table is in L{ion.core.cc.peer_state}.

An ended epoch (DEAD or LEFT) stays on the ended list for C{ttl_dead}
seconds: traffic from it is dropped and counted, and heartbeats carry the
DEAD part of it (the dead digest), so a container wrongly declared dead finds
out and comes back under a new epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from ion.core.cc.peer_state import (
    DEAD,
    ENDED,
    LEFT,
    SUSPECT,
    UP,
    PeerCore,
    PeerInputs,
    new_peer_machine,
)

log = Logger()

#: C{probe(peer)}: fires True while its agent queue is held, False once it is gone.
Probe = Callable[["Peer"], Deferred[bool]]
#: C{on_change(peer, old_state, why)}: called after each change of state (old None: new peer).
OnChange = Callable[["Peer", "str | None", str], None]


@dataclass(eq=False)
class Peer:
    """One epoch of another container, as last heard of."""

    cid: str
    epoch: int
    queue: str  # its agent queue: what the probe and presence notices name
    interval: float  # its heartbeat interval H
    dead_after: int  # its k: heartbeats missed before it is suspect
    since: float  # when it entered its state (clock seconds)
    last_heard: float
    info: dict[str, Any] = field(default_factory=dict)  # what its announce said
    seq: int = 0
    lag_ms: float = 0.0
    n_procs: int = 0
    why: str = ""  # why it is in its state
    stalled: bool = False  # its deadline ran late once: given an interval more
    due: float = 0.0  # when its deadline should run
    _inputs: PeerInputs = field(init=False, repr=False)
    _core: PeerCore = field(init=False, repr=False)
    _timer: Any = field(default=None, repr=False)  # the deadline, then the probe loop
    _limit: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._inputs, self._core = new_peer_machine()

    @property
    def state(self) -> str:
        return self._core.state

    @property
    def ended(self) -> bool:
        return self._core.state in ENDED

    def record(self) -> dict[str, Any]:
        """What C{nodes()} shows of it."""
        return {
            **self.info,
            "cid": self.cid,
            "epoch": self.epoch,
            "state": self.state,
            "since": self.since,
            "last_heard": self.last_heard,
            "seq": self.seq,
            "interval": self.interval,
            "dead_after": self.dead_after,
            "lag_ms": self.lag_ms,
            "n_procs": self.n_procs,
            "why": self.why,
        }


class Membership:
    """The peers of one container, each with its own failure detector.

    @param clock: an C{IReactorTime} (a C{task.Clock} in tests).
    @param me: this container's id (its own traffic is ignored).
    @param probe: asks the broker whether a peer's agent queue is held.
    @param on_change: told of every new peer and change of state.
    @param suspect_max: seconds SUSPECT before DEAD regardless (None: 3·k·H of the peer).
    @param ttl_dead: seconds an ended epoch is remembered.
    """

    def __init__(
        self,
        clock: Any,
        me: str,
        probe: Probe,
        on_change: OnChange,
        *,
        suspect_max: float | None = None,
        ttl_dead: float = 60.0,
    ) -> None:
        self._clock = clock
        self.me = me
        self._probe = probe
        self._on_change = on_change
        self.suspect_max = suspect_max
        self.ttl_dead = ttl_dead
        self.peers: dict[str, Peer] = {}  # cid -> its newest epoch
        self.ended: dict[tuple[str, int], tuple[str, float]] = {}  # -> (state, forget at)
        self.dropped = 0  # messages from ended or older epochs
        self.paused = False

    # -- what arrives ------------------------------------------------------------

    def heard(self, content: dict[str, Any], queue_of: Callable[[str, int], str]) -> Peer | None:
        """A heartbeat, announce or identify from a peer (C{queue_of(cid, epoch)}
        names its agent queue); return its peer, or None when it is dropped
        (this container's own, or of an ended or older epoch)."""
        cid, epoch = content.get("cid"), content.get("epoch")
        if not isinstance(cid, str) or not isinstance(epoch, int) or cid == self.me:
            return None
        if (cid, epoch) in self.ended:
            self.dropped += 1
            return None
        peer = self.peers.get(cid)
        if peer is not None and epoch < peer.epoch:
            self.dropped += 1
            return None
        now = self._clock.seconds()
        if peer is not None and epoch > peer.epoch:
            self._feed(peer, PeerInputs.gone, f"came back as epoch {epoch}")
        if peer is None or epoch > peer.epoch:
            peer = Peer(
                cid, epoch, queue_of(cid, epoch), _positive(content.get("interval"), 1.0),
                max(1, int(content.get("dead_after") or 3)), now, now,
            )  # fmt: skip
            self.peers[cid] = peer
            self._update(peer, content, now)
            self._arm_deadline(peer)
            peer.why = "first heard"
            self._on_change(peer, None, peer.why)
            return peer
        self._update(peer, content, now)
        if peer.state == SUSPECT:
            self._stop_suspecting(peer)
            self._feed(peer, PeerInputs.heard, "heard again")
        self._arm_deadline(peer)
        return peer

    def goodbye(self, cid: str, epoch: int) -> None:
        """Peer C{cid} stops in order: LEFT at once."""
        peer = self.peers.get(cid)
        if peer is None or peer.epoch != epoch:
            self.dropped += (cid, epoch) in self.ended
            return
        self._feed(peer, PeerInputs.goodbye, "said goodbye")

    def queue_gone(self, queue: str) -> None:
        """The broker says agent queue C{queue} was deleted: its peer is DEAD."""
        for peer in list(self.peers.values()):
            if peer.queue == queue:
                self._feed(peer, PeerInputs.gone, "its agent queue was deleted")

    # -- what is known -----------------------------------------------------------

    def dead_digest(self) -> list[list[Any]]:
        """The (cid, epoch) pairs declared DEAD and not yet forgotten."""
        now = self._clock.seconds()
        for key in [k for k, (_s, until) in self.ended.items() if until <= now]:
            del self.ended[key]
            peer = self.peers.get(key[0])
            if peer is not None and peer.epoch == key[1]:
                del self.peers[key[0]]
        return [[cid, epoch] for (cid, epoch), (s, _u) in self.ended.items() if s == DEAD]

    def up(self) -> list[Peer]:
        """The peers neither DEAD nor LEFT."""
        return [p for p in self.peers.values() if not p.ended]

    # -- pausing (this container frozen, or its connection down) -----------------

    def pause(self) -> None:
        """Stop judging: nothing can be heard now, so silence proves nothing."""
        self.paused = True
        for peer in self.peers.values():
            self._cancel(peer)

    def resume(self) -> None:
        """Judge again, every live peer's deadline counted from now."""
        self.paused = False
        for peer in self.up():
            if peer.state == SUSPECT:
                self._suspect(peer)
            else:
                self._arm_deadline(peer)

    def stop(self) -> None:
        """Cancel every timer (the agent is going)."""
        self.paused = True
        for peer in self.peers.values():
            self._cancel(peer)

    # -- the detector ------------------------------------------------------------

    def _update(self, peer: Peer, content: dict[str, Any], now: float) -> None:
        peer.last_heard = now
        peer.stalled = False
        if isinstance(seq := content.get("seq"), int):
            peer.seq = seq
        if isinstance(lag := content.get("lag_ms"), int | float):
            peer.lag_ms = float(lag)
        if isinstance(n := content.get("n_procs"), int):
            peer.n_procs = n
        if "host" in content:  # an announce: what it says of itself
            peer.info = {k: content[k] for k in _INFO if k in content}

    def _arm_deadline(self, peer: Peer) -> None:
        if self.paused or peer.ended:
            return
        wait = peer.dead_after * peer.interval
        peer.due = self._clock.seconds() + wait
        timer = peer._timer
        if timer is not None and timer.active():
            timer.reset(wait)
        else:
            peer._timer = self._clock.callLater(wait, self._missed, peer)

    def _missed(self, peer: Peer) -> None:
        peer._timer = None
        now = self._clock.seconds()
        late = now - peer.due
        if late > peer.interval / 2 and not peer.stalled:
            # The deadline ran this late: this container was stalled (its
            # reactor blocked, its process stopped), and what peers sent
            # meanwhile is still waiting to be read. Read it first.
            peer.stalled = True
            peer.due = now + peer.interval
            peer._timer = self._clock.callLater(peer.interval, self._missed, peer)
            return
        silent = now - peer.last_heard
        self._feed(peer, PeerInputs.deadline, f"no heartbeat for {silent:.2f}s")
        if peer.state == SUSPECT:
            self._suspect(peer)

    def _suspect(self, peer: Peer) -> None:
        limit = self.suspect_max
        if limit is None:
            limit = 3 * peer.dead_after * peer.interval
        left = max(0.0, peer.since + limit - self._clock.seconds())
        peer._limit = self._clock.callLater(left, self._limit_reached, peer, limit)
        self._probe_now(peer)

    def _limit_reached(self, peer: Peer, limit: float) -> None:
        peer._limit = None
        self._feed(peer, PeerInputs.limit, f"suspect for {limit:g}s (suspect_max)")

    def _probe_now(self, peer: Peer) -> None:
        peer._timer = None
        if self.paused or peer.state != SUSPECT:
            return
        d = self._probe(peer)
        d.addCallbacks(self._probed, self._probe_failed, callbackArgs=(peer,), errbackArgs=(peer,))

    def _probed(self, held: bool, peer: Peer) -> None:
        if self.paused or peer.state != SUSPECT:
            return
        if held:
            self._feed(peer, PeerInputs.still_held, "its agent queue is still held")
        else:
            self._feed(peer, PeerInputs.gone, "its agent queue is gone")
        self._next_probe(peer)

    def _probe_failed(self, failure: Failure, peer: Peer) -> None:
        log.debug("probe of {cid} failed: {f}", cid=peer.cid, f=failure.value)
        self._next_probe(peer)

    def _next_probe(self, peer: Peer) -> None:
        if not self.paused and peer.state == SUSPECT and peer._timer is None:
            peer._timer = self._clock.callLater(peer.interval, self._probe_now, peer)

    def _stop_suspecting(self, peer: Peer) -> None:
        self._cancel(peer)

    def _cancel(self, peer: Peer) -> None:
        for name in ("_timer", "_limit"):
            timer = getattr(peer, name)
            if timer is not None and timer.active():
                timer.cancel()
            setattr(peer, name, None)

    def _feed(self, peer: Peer, inp: Callable[..., None], why: str) -> None:
        old = peer.state
        getattr(peer._inputs, inp.__name__)()
        new = peer.state
        if new == old:
            return
        peer.since = self._clock.seconds()
        peer.why = why
        if new in ENDED:
            self._cancel(peer)
            self.ended[(peer.cid, peer.epoch)] = (new, peer.since + self.ttl_dead)
        self._on_change(peer, old, why)


_INFO = ("host", "os_pid", "version", "started", "sysname", "apps", "agent")


def _positive(value: Any, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return default


__all__ = ["DEAD", "LEFT", "SUSPECT", "UP", "Membership", "Peer"]
