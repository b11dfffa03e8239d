"""The container agent: every container's member of its system.

One agent process runs in each container (C{cc_agent}, spawned first, so it
is terminated last). It takes two kinds of traffic on its I{agent queue}
C{<sysname>.cc.<cid>.<epoch>}, exclusive to the container's connection:

- from the fanout exchange C{ion.<sysname>.containers}: every container's
  C{identify} (on joining), C{heartbeat} (every H seconds: seq, epoch,
  reactor lag, process count and the dead digest) and C{goodbye} (an orderly
  stop's last word);
- addressed to C{cc.<cid>} on the system's exchange: the unicast C{announce}
  that answers an identify, and the ops C{ping}, C{get_info}, C{spawn},
  C{terminate} and C{kill}, from other agents, the shell or ion-rpc.

What it hears feeds L{ion.core.cc.membership.Membership}, which judges each
peer UP, SUSPECT, DEAD or LEFT; a peer DEAD or LEFT ends the links and
monitors made with that epoch of it or an earlier one (C{noconnection}; not
those made with a newer one: L{ion.core.process.remote}) and is announced
(event 1055). The epoch goes up each time this container's broker connection
comes back, with a new agent queue: peers end the old epoch and meet the new one. What it sends is
in L{ion.core.cc.agent_wire}, its ops in L{ion.core.cc.agent_ops}.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.internet.defer import Deferred

from ion.core.cc import agent_ops, presence
from ion.core.cc.agent_wire import ANNOUNCE, IDENTIFY, AgentWire, agent_key
from ion.core.cc.membership import DEAD, LEFT, SUSPECT, UP, Membership, Peer
from ion.core.config import number_setting
from ion.core.exception import BrokerError
from ion.core.messaging import message as m
from ion.core.process.process import Process

PRESENCE_GRACE = 0.05  # seconds a presence notice waits for a peer's last messages


class ContainerAgent(agent_ops.AgentOps, AgentWire, Process):
    """Membership, failure detection and remote operations for one container."""

    name = "cc_agent"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.epoch = 0
        self.mode = presence.PROBE
        self.membership: Membership | None = None
        self.frozen = False
        self.joined = False
        self.reconnecting = False  # the broker connection is lost, or back but not yet rejoined
        self._rejoining = False
        self._rejoin_due: str | None = None  # why to join again once the rejoin under way ends
        self._graces: set[Any] = set()  # presence notices waiting out PRESENCE_GRACE
        self._queue: str | None = None
        self._tag: str | None = None
        self._seq = 0
        self._beat: Any = None
        self._due = 0.0
        self._lag_ms = 0.0
        self._started = time.time()

    # -- settings ----------------------------------------------------------------

    def _read_settings(self) -> None:
        get = self.config.get
        self.interval = number_setting("agent.heartbeat", get("agent.heartbeat", 1.0))
        self.dead_after = int(number_setting("agent.dead_after", get("agent.dead_after", 3)))
        limit = get("agent.suspect_max", None)
        self.suspect_max = None if limit is None else number_setting("agent.suspect_max", limit)
        self.ttl_dead = number_setting("agent.ttl_dead", get("agent.ttl_dead", 60.0))
        self.info_timeout = number_setting("agent.info_timeout", get("agent.info_timeout", 2.0))
        self.use_presence = str(get("agent.presence", "auto")) != "off"

    # -- life cycle ----------------------------------------------------------------

    async def on_init(self) -> None:
        self._read_settings()
        c = self.container
        self.fanout = f"ion.{c.sysname}.containers"
        await c.exchange.broker.declare_exchange(self.fanout, "fanout")
        self.membership = Membership(
            c.reactor, c.id, self._probe, self._changed,
            suspect_max=self.suspect_max, ttl_dead=self.ttl_dead,
        )  # fmt: skip
        broker = c.exchange.broker
        broker.on_connection_lost(self._connection_lost)
        broker.on_reconnected(self._reconnected)
        self.own(_Quiet(self))

    async def on_activate(self) -> None:
        await self._open_agent_queue()
        if self.use_presence:
            c = self.container
            self.mode = await presence.watch(
                c.exchange.broker, c.exchange.queue_name(f"cc.{c.id}.presence"),
                c.exchange.queue_name("cc."), self._queue_deleted,
                getattr(c.exchange.broker, "vhost", None),
            )  # fmt: skip
        self.log.info(
            "agent of {cid}: heartbeat {h:g}s, dead after {k} missed; failures confirmed by {how}",
            cid=self.container.id, h=self.interval, k=self.dead_after,
            how="broker presence notices" if self.mode == presence.PRESENCE
            else "probing agent queues (no presence notices from this broker)",
        )  # fmt: skip

    def join(self) -> None:
        """Say this container is here (the container is ready): one identify to
        all, which each agent answers to this one alone; then beat."""
        self.joined = True
        self._broadcast(IDENTIFY, self.announcement())
        self._schedule_beat(self.container.reactor.seconds())

    async def on_terminate(self) -> None:
        # (Beating, judging and taking from the agent queue stopped with _Quiet.)
        if self.joined and not self.frozen:
            # The last word: the processes of this container have said theirs.
            try:
                await self._goodbye()
            except BrokerError as e:
                self.log.info("goodbye not sent: {why}", why=e)

    # -- the agent queue -------------------------------------------------------------

    def queue_of(self, cid: str, epoch: int) -> str:
        """The agent queue of container C{cid} in epoch C{epoch}."""
        return self.container.exchange.queue_name(f"cc.{cid}.{epoch}")

    async def _open_agent_queue(self) -> None:
        c = self.container
        broker = c.exchange.broker
        queue = self.queue_of(c.id, self.epoch)
        # Not auto-delete: a frozen agent holds it without a consumer.
        await broker.declare_queue(queue, exclusive=True)
        await broker.bind_queue(queue, self.fanout, "")
        await broker.bind_queue(queue, c.exchange.exchange_name, agent_key(c.id))
        self._queue = queue
        await self._take()

    async def _take(self) -> None:
        """Consume the agent queue (prefetch unbounded: heartbeats must not wait)."""
        assert self._queue is not None
        self._tag = await self.container.exchange.broker.consume(
            self._queue, self.runtime.deliver, 0
        )

    async def _stop_taking(self) -> None:
        """Cancel the consumer of the agent queue; the queue stays held."""
        tag, self._tag = self._tag, None
        if tag is not None:
            try:
                await self.container.exchange.broker.cancel(tag)
            except BrokerError as e:
                self.log.debug("agent queue consumer not cancelled: {why}", why=e)

    def consumes(self, tag: str) -> bool:
        return tag == self._tag or super().consumes(tag)

    def intake_failed(self, queue: str, error: Exception) -> None:
        if queue != self._queue:
            super().intake_failed(queue, error)
            return
        self.log.warn("agent queue {queue} lost ({why}); joining again under a new epoch",
                      queue=queue, why=error)  # fmt: skip
        Deferred.fromCoroutine(self._rejoin("its agent queue was lost"))

    # -- what arrives ------------------------------------------------------------------

    def op_identify(self, content: Any, headers: dict[str, Any], msg: m.Message) -> None:
        """A container joins: note it, and tell it (alone) about this one."""
        if self._heard(content) is not None:
            self._unicast(content["cid"], ANNOUNCE, self.announcement()).addErrback(
                lambda f: self.log.debug(
                    "announce to {cid} not sent: {f}", cid=content["cid"], f=f.value
                )  # fmt: skip
            )

    def op_announce(self, content: Any, headers: dict[str, Any], msg: m.Message) -> None:
        """A container says what it is (in answer to an identify)."""
        self._heard(content)

    def op_heartbeat(self, content: Any, headers: dict[str, Any], msg: m.Message) -> None:
        """A container is alive; its dead digest may say this one was declared dead."""
        if not isinstance(content, dict) or self.frozen:
            return
        me = [self.container.id, self.epoch]
        if me in (content.get("dead") or ()) and content.get("cid") != self.container.id:
            Deferred.fromCoroutine(self._rejoin(f"{content.get('cid')} declared it dead"))
            return
        peer = self._heard(content)
        if peer is not None and not peer.info:
            # Heard before its announce (or that was lost): ask for it.
            self._unicast(peer.cid, IDENTIFY, self.announcement()).addErrback(lambda f: None)

    def op_goodbye(self, content: Any, headers: dict[str, Any], msg: m.Message) -> None:
        """A container stops in order."""
        if isinstance(content, dict) and self.membership is not None:
            cid, epoch = content.get("cid"), content.get("epoch")
            if isinstance(cid, str) and isinstance(epoch, int):
                self.membership.goodbye(cid, epoch)

    def _heard(self, content: Any) -> Peer | None:
        if not isinstance(content, dict) or self.membership is None or self.frozen:
            return None
        return self.membership.heard(content, self.queue_of)

    def _queue_deleted(self, queue: str) -> None:
        # Judged a moment later: a peer's last messages (its processes' exit
        # signals, its goodbye) come through other queues than the notice,
        # and the broker need not hand them over first.
        if self.winding_down:
            return  # (notices come until the connection closes)
        call = self.container.reactor.callLater(PRESENCE_GRACE, self._gone, queue)
        self._graces.add(call)

    def _gone(self, queue: str) -> None:
        self._graces = {c for c in self._graces if c.active()}
        if self.membership is not None and not self.frozen:
            self.membership.queue_gone(queue)

    def _probe(self, peer: Peer) -> Deferred[bool]:
        d: Deferred[bool] = self.container.exchange.broker.queue_exists(peer.queue)
        return d

    # -- judgements ----------------------------------------------------------------------

    def _changed(self, peer: Peer, old: str | None, why: str) -> None:
        new = peer.state
        silent = self.container.reactor.seconds() - peer.last_heard
        ended = 0
        if new in (DEAD, LEFT):  # (not those made with a newer epoch of it)
            ended = self.container.proc_manager.container_lost(peer.cid, peer.epoch)
        if old is None:
            self.log.info("container {cid} (epoch {epoch}) UP", cid=peer.cid, epoch=peer.epoch)
        elif new == SUSPECT:
            self.log.warn("container {cid} (epoch {epoch}) SUSPECT: {why}",
                          cid=peer.cid, epoch=peer.epoch, why=why)  # fmt: skip
        elif new == UP:
            self.log.info("container {cid} (epoch {epoch}) UP again: {why}",
                          cid=peer.cid, epoch=peer.epoch, why=why)  # fmt: skip
        else:
            log = self.log.warn if new == DEAD else self.log.info
            log("container {cid} (epoch {epoch}) {state}: {why}; last heard {silent:.3f}s ago; "
                "{n} links and monitors into it ended (noconnection)",
                cid=peer.cid, epoch=peer.epoch, state=new, why=why, silent=silent, n=ended)  # fmt: skip
        self.container.announce(
            1055, peer.cid, observer_id=self.container.id, peer_id=peer.cid,
            epoch=peer.epoch, state=new, reason=why, silent_for=silent, links_ended=ended,
        )  # fmt: skip

    # -- epochs: coming back -------------------------------------------------------------

    def _connection_lost(self, error: Exception) -> None:
        self.reconnecting = True
        if self.membership is not None:
            self.membership.pause()  # nothing can be heard: silence proves nothing
        self._stop_beating()

    def _reconnected(self) -> None:
        self.reconnecting = False
        Deferred.fromCoroutine(self._rejoin("the broker connection came back", reconnected=True))

    async def _rejoin(self, why: str, reconnected: bool = False) -> None:
        """Join again under a new epoch and agent queue: peers end the old epoch
        (and so their links into this container) when they meet the new one, so
        this container ends its own links into other containers too.

        Once at a time, and not while the broker connection is coming back: a
        reconnect declares the old agent queue again and resumes its consumer
        before it calls L{_reconnected}, so a peer's heartbeat naming the old
        epoch dead can come first, and a rejoin for it as well as the
        reconnect's would make two epochs (and agent queues) where one is due.
        A reconnect while a rejoin is under way (begun on the lost connection)
        joins again once that one ends."""
        if self.winding_down or self.membership is None:
            return
        if self._rejoining:
            if reconnected:
                self._rejoin_due = why
            return
        if self.reconnecting:
            self.log.debug("not joining again ({why}) now: the reconnect will", why=why)
            return
        self._rejoining = True
        try:
            next_why: str | None = why
            while next_why is not None and not self.winding_down:
                self._rejoin_due = None
                await self._new_epoch(next_why)
                next_why = self._rejoin_due
        finally:
            self._rejoining = False

    async def _new_epoch(self, why: str) -> None:
        assert self.membership is not None
        old_queue, old_tag = self._queue, self._tag
        self.epoch += 1
        self.log.warn("container {cid} joins again as epoch {epoch}: {why}",
                      cid=self.container.id, epoch=self.epoch, why=why)  # fmt: skip
        self.container.proc_manager.remote.cut_all()
        broker = self.container.exchange.broker
        try:
            if old_queue is not None:
                self._queue = None
                await broker.delete_queue(old_queue)  # forgets its consumer too
                if self._tag == old_tag:  # (a terminate meanwhile cancelled it)
                    self._tag = None
            if not self.winding_down:
                await self._open_agent_queue()
        except BrokerError as e:
            self.log.warn("joining again failed: {why}", why=e)
            return
        if self.winding_down:
            # Terminated meanwhile (its container stops): it has said goodbye
            # and stopped its timers; it takes nothing more and starts none.
            await self._stop_taking()
            return
        self.membership.resume()
        self._stop_beating()
        if self.joined:
            self.join()

    # -- the freeze knob (tests): a container whose agent stops, as under SIGSTOP ------

    async def freeze(self) -> None:
        """Stop beating, hearing and judging, but hold the agent queue: peers
        find it still held (405). Messages to the agent wait in its queue."""
        self.frozen = True
        self._stop_beating()
        assert self.membership is not None
        self.membership.pause()
        await self._stop_taking()

    async def thaw(self) -> None:
        """Go on: what waited in the agent queue is taken (heartbeats first
        in line), then the deadlines count from now."""
        assert self.membership is not None and self._queue is not None
        self.frozen = False
        self.membership.resume()
        await self._take()
        if self.joined:
            self._schedule_beat(self.container.reactor.seconds())


class _Quiet:
    """Owned by the agent: however it ends (a kill runs no on_terminate), stop
    beating, judging (presence notices waiting out their grace too) and taking
    from the agent queue (the runtime does not know that consumer: it would
    hand a dead process what arrives, again and again)."""

    def __init__(self, agent: ContainerAgent) -> None:
        self.agent = agent

    def __repr__(self) -> str:
        return "<the agent's timers and consumer>"

    async def stop(self) -> None:
        agent = self.agent
        agent._stop_beating()
        if agent.membership is not None:
            agent.membership.stop()
        for call in agent._graces:  # presence notices waiting out their grace
            if call.active():
                call.cancel()
        agent._graces.clear()
        await agent._stop_taking()
