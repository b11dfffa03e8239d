"""What a container agent sends: identify, announce, heartbeats and goodbye.

The agents' own messages are ion messages of protocol C{cc} (performative
C{inform}, the op naming the kind): broadcast on the fanout exchange
C{ion.<sysname>.containers}, or sent to one agent by its routing key
C{cc.<cid>}. A heartbeat carries the sender's seq, epoch, the lateness of its
own timer (its reactor's lag), its process count, its H and k and the dead
digest; the next is due an interval after this one was due.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from twisted.internet.defer import Deferred

from ion import __version__
from ion.core.messaging import message as m

CC = "cc"  # the protocol of the agents' own messages
IDENTIFY, ANNOUNCE, HEARTBEAT, GOODBYE = "identify", "announce", "heartbeat", "goodbye"


def agent_key(cid: str) -> str:
    """The routing key of container C{cid}'s agent on the system's exchange."""
    return f"cc.{cid}"


class AgentWire:
    """The sending side of L{ion.core.cc.agent.ContainerAgent}."""

    container: Any
    id: Any
    log: Any
    epoch: int
    fanout: str
    interval: float
    dead_after: int
    mode: str
    membership: Any
    winding_down: bool
    _seq: int
    _beat: Any
    _due: float
    _lag_ms: float
    _started: float

    def _encode(self, to: str, op: str, content: dict[str, Any]) -> bytes:
        me = str(self.id)
        headers = {
            m.SENDER: me,
            m.RECEIVER: to,
            m.CONV_ID: f"{CC}:{me}",
            m.PROTOCOL: CC,
            m.PERFORMATIVE: "inform",
            m.OP: op,
            m.TS: int(time.time() * 1000),
        }
        return m.encode(headers, content, self.container.exchange.signer)

    def _broadcast(self, op: str, content: dict[str, Any]) -> Deferred[None]:
        body = self._encode(self.fanout, op, content)
        return self.container.exchange.broker.publish(self.fanout, "", body)

    def _goodbye(self) -> Deferred[None]:
        """Say goodbye after the exit and down signals of this container's
        processes, not before: a peer that reads the goodbye first ends the
        links and monitors still open into this container with C{noconnection},
        and the C{shutdown} that was sent drops in late. Those signals are
        mandatory publishes, which RabbitMQ takes on the connection's confirm
        channel; channels are not ordered with one another, so the goodbye goes
        on that channel too (mandatory, confirmed: the fanout has this agent's
        own queue bound, so it is routed) and is routed after them."""
        body = self._encode(self.fanout, GOODBYE, {"cid": self.container.id, "epoch": self.epoch})
        broker = self.container.exchange.broker
        return broker.publish(self.fanout, "", body, mandatory=True, confirm=True)

    def _unicast(self, cid: str, op: str, content: dict[str, Any]) -> Deferred[None]:
        key = agent_key(cid)
        return self.container.exchange.publish(key, self._encode(key, op, content))

    def announcement(self) -> dict[str, Any]:
        """What this container says of itself (announce, identify, get_info)."""
        c = self.container
        return {
            "cid": c.id,
            "epoch": self.epoch,
            "agent": str(self.id),
            "host": socket.gethostname(),
            "os_pid": os.getpid(),
            "version": __version__,
            "started": self._started,
            "sysname": c.sysname,
            "broker": c.broker_node,
            "apps": [a.name for a in c.apps()],
            "interval": self.interval,
            "dead_after": self.dead_after,
            "mode": self.mode,
        }

    # -- heartbeats --------------------------------------------------------------------

    def _schedule_beat(self, due: float) -> None:
        if self.winding_down:  # (a rejoin or thaw that ended after the agent did)
            return
        self._due = due
        clock = self.container.reactor
        self._beat = clock.callLater(max(0.0, due - clock.seconds()), self._heartbeat)

    def _heartbeat(self) -> None:
        clock = self.container.reactor
        now = clock.seconds()
        self._lag_ms = max(0.0, now - self._due) * 1000  # how late the reactor ran us
        self._seq += 1
        assert self.membership is not None
        content = {
            "cid": self.container.id,
            "epoch": self.epoch,
            "seq": self._seq,
            "sent": time.time(),
            "n_procs": len(self.container.proc_manager.processes),
            "lag_ms": round(self._lag_ms, 1),
            "interval": self.interval,
            "dead_after": self.dead_after,
            "dead": self.membership.dead_digest(),
        }
        self._broadcast(HEARTBEAT, content).addErrback(
            lambda f: self.log.debug("heartbeat not sent: {f}", f=f.value)
        )
        # The next one is due an interval after this one was due, unless the
        # reactor ran us later than that: then an interval from now.
        due = self._due + self.interval
        self._schedule_beat(due if due > now else now + self.interval)

    def _stop_beating(self) -> None:
        if self._beat is not None and self._beat.active():
            self._beat.cancel()
        self._beat = None
