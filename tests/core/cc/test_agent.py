"""The container agent on the embedded broker and a fake clock (A17): the
scenarios A1-A6, A9-A14 and A16 of the agent notes, deterministic. Detection
times are printed beside their bounds (C{pytest -s})."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred

from ion.core import exception as exc
from ion.core.cc import agent_client
from ion.core.cc.agent import ContainerAgent
from ion.core.cc.membership import DEAD, LEFT, SUSPECT, UP
from ion.core.process.process import Process
from ion.core.process.supervisor import Supervisor
from tests.core.cc.agent_system import H, K, System, Watcher

ALLOW = ["tests.core.cc.test_agent:*", "ion.services.*"]


class Echo(Process):
    def op_echo(self, content: Any, headers: dict[str, Any], msg: Any) -> Any:
        return content


class Crashy(Process):
    def op_crash(self, content: Any, headers: dict[str, Any], msg: Any) -> None:
        raise exc.FatalError("asked to crash")

    crash_on_error = True


class BadInit(Process):
    def on_init(self) -> None:
        raise ValueError("no good")


@pytest.fixture
def system() -> Any:
    s = System()
    yield s
    s.stop_all()


def test_a1_containers_meet_with_one_identify_and_one_unicast_answer_each(system: System) -> None:
    system.start("c1")
    system.spy()
    system.start("c2")
    system.run(H)
    assert system.view("c1") == {"c2": (0, UP)}
    assert system.view("c2") == {"c1": (0, UP)}
    joins = [(op, key) for op, key, _ in system.spied if op in ("identify", "announce")]
    assert joins == [("identify", ""), ("announce", "cc.c2")]
    system.start("c3")
    system.run(H)
    assert system.view("c3") == {"c1": (0, UP), "c2": (0, UP)}
    joins = [(op, key) for op, key, _ in system.spied if op in ("identify", "announce")][2:]
    assert sorted(joins) == [("announce", "cc.c3"), ("announce", "cc.c3"), ("identify", "")]


def test_a1_heartbeats_carry_seq_epoch_lag_and_intervals(system: System) -> None:
    system.start("c1")
    system.spy()
    system.run(3 * H)
    beats = [c for op, _k, c in system.spied if op == "heartbeat"]
    seqs = [b["seq"] for b in beats]
    assert len(seqs) >= 2 and seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    beat = beats[-1]
    assert beat["cid"] == "c1" and beat["epoch"] == 0 and beat["interval"] == H
    assert beat["dead_after"] == K and beat["lag_ms"] >= 0 and beat["dead"] == []


def test_a2_orderly_stop_is_left_after_its_processes_said_shutdown(system: System) -> None:
    c1, c2 = system.start("c1"), system.start("c2")
    system.run(H)
    watcher = system.wait(c1.spawn(Watcher))
    far = system.wait(c2.spawn(Echo))
    watcher.monitor(far.id)
    system.run(H)
    states: list[str] = []
    agent = c1.agent
    assert agent is not None
    changed = agent._changed

    def spy(peer: Any, old: Any, why: str) -> None:
        states.append(f"{peer.state} (downs so far: {len(watcher.downs)})")
        changed(peer, old, why)

    agent.membership._on_change = spy  # type: ignore[union-attr]
    system.stop("c2")
    system.run(0.01)
    assert system.view("c1") == {"c2": (0, LEFT)}
    assert states == ["LEFT (downs so far: 1)"], "no SUSPECT; the down came before the goodbye"
    assert watcher.downs == [(str(far.id), "shutdown")]


def _detect(system: System, presence: bool) -> float:
    system.start("c1")
    system.start("c2")
    system.run(H)
    crashed = system.clock.seconds()
    system.crash("c2")
    for _ in range(int((K + 2) * H / 0.01)):
        if system.view("c1")["c2"][1] == DEAD:
            break
        system.run(0.01)
    assert system.view("c1")["c2"] == (0, DEAD)
    return system.clock.seconds() - crashed


def test_a3_a_crash_is_dead_at_once_with_presence_notices() -> None:
    system = System(presence=True)
    published = system.spy_events()
    took = _detect(system, True)
    print(
        f"\nA3 embedded, presence notices: DEAD {took * 1000:.0f} ms after the crash (bound 500 ms)"
    )
    assert system.containers["c1"].agent.mode == "presence"  # type: ignore[union-attr]
    assert took <= 0.5
    [dead] = [e for e in published if e.peer_state.state == DEAD]
    assert (dead.origin, dead.container_id) == ("c2", "c1")
    assert (dead.peer_state.observer_id, dead.peer_state.peer_id) == ("c1", "c2")
    assert dead.peer_state.reason == "its agent queue was deleted"
    system.stop_all()


def test_a4_a_crash_is_dead_within_k_plus_1_intervals_by_probe() -> None:
    system = System(presence=False)
    took = _detect(system, False)
    bound = (K + 1) * H
    print(
        f"\nA4 embedded, probe: DEAD {took * 1000:.0f} ms after the crash (bound {bound * 1000:.0f} ms)"
    )
    assert system.containers["c1"].agent.mode == "probe"  # type: ignore[union-attr]
    assert K * H - 0.011 <= took <= bound
    system.stop_all()


def _frozen_after_linking(system: System, far_cls: type[Process]) -> tuple[Any, Any, Any, float]:
    """c1 and c2 up, a Watcher of c1 linked with a C{far_cls} of c2, then c2's
    agent frozen: (c2, the watcher, the far process, when it froze)."""
    c1, c2 = system.start("c1"), system.start("c2")
    system.run(H)
    watcher = system.wait(c1.spawn(Watcher))
    far = system.wait(c2.spawn(far_cls))
    watcher.link(far.id)
    system.run(H)
    frozen_at = system.clock.seconds()
    system.wait(c2.agent.freeze())  # type: ignore[union-attr]
    return c2, watcher, far, frozen_at


def test_a5_a_frozen_container_is_suspect_not_dead_and_comes_back_without_noconnection() -> None:
    system = System(presence=False)
    c2, watcher, far, frozen_at = _frozen_after_linking(system, Echo)
    suspect_at = None
    while system.clock.seconds() - frozen_at < 2 * K * H:
        system.run(0.01)
        if suspect_at is None and system.view("c1")["c2"][1] == SUSPECT:
            suspect_at = system.clock.seconds() - frozen_at
    assert suspect_at is not None
    print(
        f"\nA5 embedded: SUSPECT {suspect_at * 1000:.0f} ms after the freeze (k·H {K * H * 1000:.0f} ms + up to one interval)"
    )
    assert K * H - 0.011 <= suspect_at <= (K + 1) * H
    assert system.view("c1")["c2"] == (0, SUSPECT)  # still held: not dead
    system.wait(c2.agent.thaw())  # type: ignore[union-attr]
    system.run(2 * H)
    assert system.view("c1")["c2"] == (0, UP)
    assert watcher.exits == [] and watcher.links == {str(far.id)}


def test_a6_frozen_past_suspect_max_is_dead_then_rejoins_under_a_new_epoch() -> None:
    system = System(presence=False)
    c2, watcher, far, frozen_at = _frozen_after_linking(system, Watcher)
    dead_at = None
    while dead_at is None and system.clock.seconds() - frozen_at < 6 * K * H:
        system.run(0.01)
        if system.view("c1")["c2"][1] == DEAD:
            dead_at = system.clock.seconds() - frozen_at
    assert dead_at is not None
    limit = 3 * K * H  # suspect_max's default
    print(
        f"\nA6 embedded: DEAD {dead_at * 1000:.0f} ms after the freeze (k·H + suspect_max = {(K * H + limit) * 1000:.0f} ms, + one interval)"
    )
    assert K * H + limit - 0.011 <= dead_at <= (K + 1) * H + limit
    assert watcher.exits == [(str(far.id), "noconnection")]
    system.wait(c2.agent.thaw())  # type: ignore[union-attr]
    system.run(2 * H)
    assert c2.agent.epoch == 1  # type: ignore[union-attr]
    assert system.view("c1")["c2"] == (1, UP)
    assert far.exits == [(str(watcher.id), "noconnection")]  # its side ended too
    assert far.state == "ACTIVE", "local processes keep running"


def _declared_dead(agent: Any, by: str = "c1") -> None:
    """A heartbeat from C{by} whose dead digest names C{agent}'s container, epoch 0."""
    me = agent.container.id
    beat = {"cid": by, "epoch": 0, "seq": 99, "interval": H, "dead_after": K, "dead": [[me, 0]]}
    agent.op_heartbeat(beat, {}, None)


def test_a7_declared_dead_while_the_connection_comes_back_joins_again_once(
    system: System,
) -> None:
    """A7: a reconnect declares the old agent queue again and resumes its
    consumer before it reports the connection back, so a peer's heartbeat
    naming the old epoch dead can come first (on RabbitMQ it did, in a
    container of many processes): the container joins again once, as epoch 1,
    not once for the heartbeat and again for the reconnect."""
    system.start("c1")
    c2 = system.start("c2")
    system.run(H)
    agent = c2.agent
    assert agent is not None
    agent._connection_lost(exc.ConnectionLostError("cut"))  # as AmqpBroker reports it
    _declared_dead(agent)
    agent._reconnected()
    system.run(2 * H)
    assert agent.epoch == 1
    assert system.view("c1")["c2"] == (1, UP)


def _rejoin_held(system: System) -> tuple[Any, ContainerAgent, Deferred[None], Any]:
    """c1 and c2 up, c2's agent then found in a dead digest: its rejoin waits on the
    deletion of its old agent queue, which C{pending} lets go on (other queues are
    deleted as ever). Returns c2, its agent, C{pending} and the broker's own
    delete_queue."""
    system.start("c1")
    c2 = system.start("c2")
    system.run(H)
    agent = c2.agent
    assert agent is not None
    broker: Any = c2.exchange.broker
    pending: Deferred[None] = Deferred()
    delete_queue, old = broker.delete_queue, agent._queue
    broker.delete_queue = lambda name: pending if name == old else delete_queue(name)
    _declared_dead(agent)
    return c2, agent, pending, delete_queue


def test_a7_a_reconnect_during_a_rejoin_joins_again_after_it(system: System) -> None:
    """A7: a rejoin begun on a connection that is then lost fails; a reconnect
    reported while it is still under way is not dropped: the container joins
    again once that rejoin has ended."""
    c2, agent, pending, delete_queue = _rejoin_held(system)
    assert agent.epoch == 1
    agent._connection_lost(exc.ConnectionLostError("cut"))
    agent._reconnected()
    c2.exchange.broker.delete_queue = delete_queue
    pending.errback(exc.ConnectionLostError("cut"))  # its call fails with the lost connection
    system.run(2 * H)
    assert agent.epoch == 2
    assert system.view("c1")["c2"] == (2, UP)


def test_a3_a_presence_notice_waiting_its_grace_dies_with_the_agent() -> None:
    """A3: a presence notice is judged PRESENCE_GRACE after it came; an agent
    terminated meanwhile (its container stops) leaves no timer for it, and
    judges nothing more."""
    system = System(presence=True)
    system.start("c1")
    c2 = system.start("c2")
    system.start("c3")
    system.run(H)
    agent = c2.agent
    assert agent is not None and agent.membership is not None
    system.crash("c3")  # its agent queue goes: a notice, judged in PRESENCE_GRACE
    system.wait(c2.proc_manager.terminate(agent))
    timers = [c for c in system.clock.getDelayedCalls() if c.active()]
    assert [c.func for c in timers if getattr(c.func, "__self__", None) is agent] == []
    system.run(2 * H)
    assert agent.membership.peers["c3"].state == UP, "judged nothing after it ended"
    system.stop_all()


def test_a7_a_rejoin_that_ends_after_the_agent_terminated_starts_no_timers(
    system: System,
) -> None:
    """A7: a container stopped while its agent joins again (on RabbitMQ: a
    test ending just after a reconnect) has its agent terminated before the
    rejoin's broker calls come back; the rejoin then neither beats nor judges
    nor tells anyone of a new epoch."""
    c2, agent, pending, delete_queue = _rejoin_held(system)
    old = agent._queue
    system.wait(c2.proc_manager.terminate(agent))  # as the container's stop does, last
    delete_queue(old)
    pending.callback(None)  # the rejoin goes on, on a connection still open
    system.run(2 * H)
    assert agent.state == "TERMINATED"
    timers = [c for c in system.clock.getDelayedCalls() if c.active()]
    assert [c.func for c in timers if getattr(c.func, "__self__", None) in
            (agent, agent.membership)] == []  # fmt: skip
    assert system.view("c1")["c2"][0] == 0, "no identify of epoch 1 after the goodbye"


def test_a9_a_heartbeat_from_a_dead_epoch_is_dropped_and_counted(system: System) -> None:
    _detect(system, True)
    agent = system.containers["c1"].agent
    assert agent is not None and agent.membership is not None
    agent.op_heartbeat({"cid": "c2", "epoch": 0, "seq": 99, "interval": H}, {}, None)  # type: ignore[arg-type]
    assert system.view("c1")["c2"] == (0, DEAD)
    assert agent.membership.dropped == 1


def _caller(system: System, cid: str, cls: type[Process] = Watcher) -> Any:
    return system.wait(system.containers[cid].spawn(cls))


def test_a10_spawn_on_another_container_under_its_remote_supervisor() -> None:
    system = System(spawn_allow=ALLOW)
    system.start("c1")
    c2 = system.start("c2")
    system.run(H)
    caller = _caller(system, "c1")
    pid = system.wait(
        agent_client.spawn_on(caller, "c2", "tests.core.cc.test_agent:Echo", name="echo")
    )
    assert pid.startswith("echo.") and pid.endswith("@c2")
    info = system.wait(caller.rpc_send("cc.c2", "get_info"))
    rows = {p["pid"]: p for p in info["processes"]}
    remote = next(p for p in rows.values() if p["name"] == "remote")
    assert rows[pid]["supervisor"] == remote["pid"]
    assert rows[pid]["class"] == "tests.core.cc.test_agent.Echo"
    assert system.wait(caller.rpc_send(pid, "echo", {"x": 1})) == {"x": 1}
    assert isinstance(c2.proc_manager.processes[remote["pid"]], Supervisor)
    system.stop_all()


def test_a11_spawn_errors_are_typed_and_leave_nothing_behind() -> None:
    system = System(spawn_allow=ALLOW)
    system.start("c1")
    c2 = system.start("c2")
    system.run(H)
    caller = _caller(system, "c1")
    spawn = agent_client.spawn_on
    with pytest.raises(exc.ModuleNotFound):
        system.wait(spawn(caller, "c2", "tests.core.cc.test_agent:Nothing"))
    with pytest.raises(exc.SpawnFailed, match="no good"):
        system.wait(spawn(caller, "c2", "tests.core.cc.test_agent:BadInit"))
    with pytest.raises(exc.NotAllowed, match="spawn_allow"):
        system.wait(spawn(caller, "c2", "ion.core.process.supervisor:Supervisor"))
    names = sorted(p.proc_name for p in c2.proc_manager.processes.values())
    assert names == ["cc_agent", "remote"], "no orphaned process"
    system.stop_all()


def test_spawn_allow_globs_match_either_spelling_of_a_class() -> None:
    """'pkg.mod:Class' and 'pkg.mod.Class' name one class: a glob in one spelling
    allows the other; what no glob names stays refused."""
    system = System(spawn_allow=["tests.core.cc.test_agent:E*", "tests.core.cc.test_agent.W*"])
    system.start("c1")
    system.start("c2")
    system.run(H)
    caller = _caller(system, "c1")
    for module in ("tests.core.cc.test_agent.Echo", "tests.core.cc.test_agent:Watcher"):
        assert system.wait(agent_client.spawn_on(caller, "c2", module)).endswith("@c2")
    with pytest.raises(exc.NotAllowed):
        system.wait(agent_client.spawn_on(caller, "c2", "tests.core.cc.test_agent.Crashy"))
    system.stop_all()


def test_a12_spawn_linked_to_the_caller_tells_it_of_a_crash() -> None:
    system = System(spawn_allow=ALLOW)
    system.start("c1")
    system.start("c2")
    system.run(H)
    caller = _caller(system, "c1")
    pid = system.wait(agent_client.spawn_on(caller, "c2", "tests.core.cc.test_agent:Crashy",
                                            link_to=str(caller.id)))  # fmt: skip
    system.run(0.05)
    assert pid in caller.links
    with pytest.raises(exc.ReceivedError):
        system.wait(caller.rpc_send(pid, "crash"))
    system.run(0.05)
    assert len(caller.exits) == 1 and caller.exits[0][0] == pid
    assert caller.exits[0][1].startswith("error")
    system.stop_all()


def test_a13_gather_info_marks_a_frozen_container_and_does_not_hang(system: System) -> None:
    system.start("c1")
    system.start("c2")
    c3 = system.start("c3")
    system.run(H)
    system.wait(c3.agent.freeze())  # type: ignore[union-attr]
    caller = _caller(system, "c1")
    asked = system.clock.seconds()
    infos = dict(system.wait(agent_client.gather_info(caller, timeout=1.0)))
    assert system.clock.seconds() - asked <= 1.1
    assert set(infos) == {"c1", "c2", "c3"}
    assert infos["c1"]["container"]["cid"] == "c1" and infos["c2"]["container"]["cid"] == "c2"
    assert isinstance(infos["c3"], exc.TimeoutError)
    system.wait(c3.agent.thaw())  # type: ignore[union-attr]


def test_a14_get_info_describes_each_process_and_the_tree(system: System) -> None:
    c1 = system.start("c1")
    sup = system.wait(c1.spawn(Supervisor, name="top", args={"children": [
        {"id": "a", "start": Echo, "name": "alpha"},
        {"id": "b", "start": Echo, "name": "beta"},
    ]}))  # fmt: skip
    caller = _caller(system, "c1")
    info = system.wait(caller.rpc_send("cc.c1", "get_info"))
    rows = {p["name"]: p for p in info["processes"]}
    alpha = rows["alpha"]
    assert set(alpha) >= {"pid", "name", "class", "state", "supervisor", "restarts",
                          "depth", "consumers", "conversations"}  # fmt: skip
    assert alpha["supervisor"] == str(sup.id) and alpha["restarts"] == 0
    assert alpha["state"] == "ACTIVE" and alpha["consumers"] == 1
    tree = [r[0] for r in info["tree"]["rows"]]
    assert tree.index("top") < tree.index("  alpha") < tree.index("  beta")
    assert info["container"]["cid"] == "c1" and info["container"]["epoch"] == 0


def test_a16_another_system_on_the_same_broker_is_never_seen() -> None:
    system = System()
    system.start("c1")
    other = System(sysname="other")
    other.clock, other.broker = system.clock, system.broker
    other.start("c9")
    system.run(5 * H)
    assert system.view("c1") == {}
    assert other.view("c9") == {}
    other.stop_all()
    system.stop_all()


def test_terminate_and_kill_reach_a_process_of_another_container(system: System) -> None:
    system.start("c1")
    c2 = system.start("c2")
    system.run(H)
    caller = _caller(system, "c1")
    a, b = system.wait(c2.spawn(Echo)), system.wait(c2.spawn(Echo))
    system.wait(agent_client.stop_remote(caller, str(a.id)))
    system.wait(agent_client.stop_remote(caller, str(b.id), kill=True))
    assert a.exit_reason == "shutdown" and b.exit_reason == "killed"
    with pytest.raises(exc.NotFound):
        system.wait(agent_client.stop_remote(caller, str(a.id)))
    with pytest.raises(exc.NotFound, match="no container"):
        system.wait(agent_client.stop_remote(caller, "x.1@nowhere"))


def test_the_agent_logs_which_way_it_confirms_failures(logs: Any) -> None:
    """With presence notices it says so; without, it says it probes."""
    for presence, said in ((True, "broker presence notices"), (False, "probing agent queues")):
        system = System(presence=presence)
        system.start("c1")
        assert any(said in text for text in logs.texts_with("agent of c1")), said
        system.stop_all()


@pytest.mark.parametrize("how", ["kill", "terminate"])
def test_an_agent_ended_alone_stops_beating_and_taking_from_its_queue(
    system: System, how: str
) -> None:
    """The agent ended without its container (a kill runs no on_terminate) beats no
    more and leaves its agent queue without a consumer: what arrives there is not
    handed to a dead process over and over. Its peers stop hearing it."""
    system.start("c1")
    c2 = system.start("c2")
    system.run(H)
    agent = c2.agent
    assert agent is not None and agent._queue is not None
    system.wait(getattr(c2.proc_manager, how)(agent))
    assert system.broker.consumer_count(agent._queue) == 0
    assert agent._beat is None and agent.state == "TERMINATED"
    system.run((K + 1) * H)
    expected = SUSPECT if how == "kill" else LEFT  # a terminate still says goodbye
    assert system.view("c1")["c2"] == (0, expected)


def test_a_bad_agent_setting_fails_the_start_naming_it() -> None:
    """A container given agent.heartbeat 0 does not start; the error names the setting."""
    system = System(heartbeat=0)
    with pytest.raises(exc.SpawnError, match="agent.heartbeat: expected a number of seconds > 0"):
        system.start("c1")
