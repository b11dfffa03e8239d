"""ion-rpc: one call from the command line into a system on RabbitMQ, and its exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.launch import (
    REPO,
    TIMEOUT,
    clean_env,
    launch_in_system,
    running,
)
from tests.rabbit import URL, require_rabbitmq

_SCRIPT = Path(sys.executable).parent / "ion-rpc"
ION_RPC = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "ion.scripts.ion_rpc"]

# A service that holds every call until it is terminated: a call to it times out.
SLOW = """\
from twisted.internet.defer import Deferred
from ion.core.process.service import ServiceProcess


class Gate:
    def __init__(self):
        self.held = []

    def hold(self):
        d = Deferred()
        self.held.append(d)
        return d

    async def stop(self):
        for d in self.held:
            d.callback(None)


class Slow(ServiceProcess):
    service_name = "slow"

    def on_init(self):
        self.gate = Gate()
        self.own(self.gate)

    async def op_wait(self, content, headers, msg):
        await self.gate.hold()
        return "late"


await cc.spawn(Slow)

# The bank example's ledger: its replies hold object types of the bank's own.
import sys
sys.path.insert(0, BANK)
import bank
await cc.spawn("bank.ledger:LedgerService", args={"opening_balances": {"alice": 500}})
"""

SERVICES = ("hello", "slow", "ledger")
BANK = REPO / "examples" / "bank"


def ion_rpc(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run ion-rpc with C{args} in C{cwd}; its exit code and output."""
    return subprocess.run(
        [*ION_RPC, *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def exchanges_left(sysname: str) -> list[str]:
    """Which of the system's exchanges exist on RabbitMQ (passive declares: nothing is made)."""
    import pika
    import pika.exceptions

    connection = pika.BlockingConnection(pika.URLParameters(URL))
    left = []
    try:
        for exchange in (f"ion.{sysname}", f"ion.{sysname}.events"):
            channel = connection.channel()  # a 404 closes the channel it came on
            try:
                channel.exchange_declare(exchange, passive=True)
            except pika.exceptions.ChannelClosedByBroker as e:
                assert e.reply_code == 404, e
                continue
            left.append(exchange)
            channel.close()
    finally:
        connection.close()
    return left


def delete_system(sysname: str) -> None:
    """Remove what the system declared on RabbitMQ: its exchanges and service queues."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(URL))
    try:
        channel = connection.channel()
        for service in SERVICES:
            channel.queue_delete(f"{sysname}.{service}")
        for exchange in (f"ion.{sysname}", f"ion.{sysname}.events", f"ion.{sysname}.containers"):
            channel.exchange_delete(exchange)
    finally:
        connection.close()


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A headless twistd container on RabbitMQ with hello and slow, in a unique sysname."""
    require_rabbitmq()
    sysname = f"t-rpc-{uuid.uuid4().hex[:8]}"
    tmp = tmp_path_factory.mktemp("ion-rpc")
    boot, ready = tmp / "slow.py", tmp / "ready"
    boot.write_text(SLOW.replace("BANK", repr(str(BANK))))
    proc = launch_in_system("rpc", URL, sysname, ready, "res/deploy/hello.rel", str(boot))
    try:
        with running(proc, ready):
            yield sysname
    finally:
        delete_system(sysname)


@pytest.mark.rabbitmq
def test_ok_reply_prints_json_and_exits_0(system: str) -> None:
    """A call that succeeds prints the reply content as JSON on stdout and exits 0."""
    done = ion_rpc("--broker", URL, "-s", system, "hello", "hello", '"you"')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"value": "Hello there, you"} and done.stderr == ""
    ping = ion_rpc("--broker", URL, "-s", system, "--timeout", "5", "hello", "ping")
    assert ping.returncode == 0 and json.loads(ping.stdout)["state"] == "ACTIVE"


@pytest.mark.rabbitmq
def test_error_reply_exits_1_with_the_message_on_stderr(system: str) -> None:
    """An error reply exits 1, with the remote error's code, type and message on stderr."""
    done = ion_rpc("--broker", URL, "-s", system, "hello", "hello", "{not: a string}")
    assert done.returncode == 1 and done.stdout == ""
    assert "hello.hello failed: [400] BadRequest: hello takes a string, not dict" in done.stderr
    unknown = ion_rpc("--broker", URL, "-s", system, "hello", "nope")
    assert unknown.returncode == 1 and "UnknownOpError" in unknown.stderr


@pytest.mark.rabbitmq
def test_import_reads_replies_of_a_projects_own_object_types(system: str) -> None:
    """--import MODULE (here the bank package, found in the working directory)
    registers the types a reply holds; it is printed in their JSON mapping."""
    done = ion_rpc(
        "--broker", URL, "-s", system, "--import", "bank", "ledger", "balance", "alice", cwd=BANK
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"owner": "alice", "balance": "500"}


@pytest.mark.rabbitmq
def test_a_reply_of_an_unknown_object_type_exits_3_naming_the_cure(system: str) -> None:
    """Without --import the call is made, but its reply cannot be read: exit 3,
    saying so, with the type id and the option that reads it."""
    credit = "{owner: bob, amount: 7}"
    done = ion_rpc("--broker", URL, "-s", system, "ledger", "credit", credit)
    assert done.returncode == 3 and done.stdout == ""
    assert "ledger.credit answered, but the reply cannot be read" in done.stderr
    assert "unknown object type id 30001" in done.stderr and "--import" in done.stderr
    after = ion_rpc(
        "--broker", URL, "-s", system, "--import", "bank", "ledger", "balance", "bob", cwd=BANK
    )
    assert json.loads(after.stdout) == {"owner": "bob", "balance": "7"}  # the credit was made


@pytest.mark.rabbitmq
def test_container_calls_that_containers_agent(system: str) -> None:
    """--container CID OP calls container CID's agent, as SERVICE cc.CID does; ion-rpc's
    own container is no member of the system (none of its calls left a peer)."""
    cid = f"t-rpc-{system}-{os.getpid()}"  # tests.launch.cc_command's id for the fixture's
    ping = ion_rpc("--broker", URL, "-s", system, "--container", cid, "ping")
    assert ping.returncode == 0, ping.stderr
    assert json.loads(ping.stdout) == {"pong": f"cc_agent.0@{cid}", "container": cid, "epoch": 0}
    same = ion_rpc("--broker", URL, "-s", system, f"cc.{cid}", "ping")
    assert same.returncode == 0 and json.loads(same.stdout) == json.loads(ping.stdout)
    info = ion_rpc("--broker", URL, "-s", system, "-c", cid, "get_info")
    assert info.returncode == 0, info.stderr
    got = json.loads(info.stdout)
    assert got["container"]["cid"] == cid and got["container"]["sysname"] == system
    names = {p["name"] for p in got["processes"]}
    assert {"cc_agent", "hello", "slow", "ledger"} <= names
    assert got["peers"] == [], "an ion-rpc call does not join the system"


@pytest.mark.rabbitmq
def test_container_errors_exit_1_or_2_with_the_reason(system: str) -> None:
    """A remote spawn the container does not allow (agent.spawn_allow is empty by
    default) exits 1 with NotAllowed; an unknown container exits 2 and says so."""
    cid = f"t-rpc-{system}-{os.getpid()}"
    spawn = "{module: 'ion.services.hello.service:HelloService'}"
    done = ion_rpc("--broker", URL, "-s", system, "-c", cid, "spawn", spawn)
    assert done.returncode == 1 and done.stdout == ""
    assert "[403] NotAllowed" in done.stderr and "agent.spawn_allow" in done.stderr
    gone = ion_rpc("--broker", URL, "-s", system, "--container", "nowhere", "ping")
    assert gone.returncode == 2
    assert f"no container 'nowhere' in system {system!r}" in gone.stderr


def test_an_import_that_fails_is_a_usage_error() -> None:
    """A module that cannot be imported is named, with why, before any call (exit 64)."""
    done = ion_rpc("--import", "no_such_module_here", "hello", "hello")
    assert done.returncode == 64 and done.stdout == ""
    assert "--import no_such_module_here: cannot import it: ModuleNotFoundError" in done.stderr


@pytest.mark.rabbitmq
def test_timeout_exits_2(system: str) -> None:
    """A call that gets no reply within --timeout exits 2 and says so."""
    done = ion_rpc("--broker", URL, "-s", system, "--timeout", "0.5", "slow", "wait")
    assert done.returncode == 2 and done.stdout == ""
    assert "slow.wait: no reply within 0.5s" in done.stderr


@pytest.mark.rabbitmq
def test_no_such_service_exits_2(system: str) -> None:
    """A call to a service nobody serves in the system exits 2 at once and names it."""
    done = ion_rpc("--broker", URL, "-s", system, "--timeout", "30", "nosuch", "op")
    assert done.returncode == 2
    assert f"no service or process 'nosuch' in system {system!r}" in done.stderr


@pytest.mark.rabbitmq
def test_no_such_system_exits_2_and_leaves_no_exchanges() -> None:
    """A call into a sysname where nothing runs exits 2, names the sysname, and leaves
    no exchange of that system behind."""
    require_rabbitmq()
    sysname = f"t-rpc-none-{uuid.uuid4().hex[:8]}"
    try:
        done = ion_rpc("--broker", URL, "-s", sysname, "--timeout", "30", "hello", "hello")
        assert done.returncode == 2, done.stderr
        assert f"no system {sysname!r} at amqp://guest:***@" in done.stderr and done.stdout == ""
        assert exchanges_left(sysname) == []
    finally:
        delete_system(sysname)  # only when the check above failed is there anything to delete


@pytest.mark.rabbitmq
def test_a_request_the_broker_refuses_fails_at_once(system: str) -> None:
    """A request the broker takes but refuses (here a full queue that rejects publishes;
    one over its size limit alike) fails the call at once with exit 2, not after --timeout."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(URL))
    try:
        channel = connection.channel()
        queue = f"{system}.full"
        channel.queue_declare(queue, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
        channel.queue_bind(queue, f"ion.{system}", "full")
        done = ion_rpc("--broker", URL, "-s", system, "--timeout", "15", "full", "op")
        channel.queue_delete(queue)
    finally:
        connection.close()
    assert done.returncode == 2 and done.stdout == ""
    assert "full.op: broker: the broker refused" in done.stderr, done.stderr


@pytest.mark.rabbitmq
def test_credentials_come_from_broker_credfile(system: str, tmp_path: Path) -> None:
    """--broker_credfile gives the credentials the URL leaves out: the right ones make the
    call, wrong ones are turned away by the broker (exit 2) and never printed."""
    url = URL.replace("guest:guest@", "")
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text("guest:guest\n")
    bad.write_text("guest:n0t-th3-pa55\n")
    done = ion_rpc("--broker", url, "--broker_credfile", str(good), "-s", system, "hello", "ping")
    assert done.returncode == 0, done.stderr
    done = ion_rpc("--broker", url, "--broker_credfile", str(bad), "-s", system, "hello", "ping")
    assert done.returncode == 2 and "cannot reach amqp://guest:***@" in done.stderr
    assert "n0t-th3-pa55" not in done.stderr + done.stdout


def test_help_keeps_credentials_off_the_command_line() -> None:
    """--help shows no user:password URL and says where credentials go instead."""
    done = ion_rpc("--help")
    assert done.returncode == 0, done.stderr
    assert "user:password@" not in done.stdout
    assert "--broker_credfile FILE" in done.stdout and "ION_BROKER__PASSWORD" in done.stdout
    assert "--container CID OP [CONTENT]" in done.stdout and "cc.CID" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["hello"], "the following arguments are required: op"),
        (["-s", "x", "hello", "hello", "{a: ["], "CONTENT is not YAML or JSON"),
        (
            ["-s", "x", "hello", "hello", "2020-01-01"],
            "CONTENT cannot be sent: can not serialize 'datetime.date' object",
        ),
        (
            ["-s", "x", "hello", "hello", "!!set {a, b}"],
            "CONTENT cannot be sent: can not serialize 'set' object",
        ),
        (
            ["-s", "x", "hello", "hello", "{a: &x [1, 2], b: [*x, *x]}"],
            "CONTENT is refused: YAML aliases (*x) are not allowed",
        ),
        (
            ["--broker_credfile", "/nonexistent/creds", "-s", "x", "hello", "hello"],
            "--broker_credfile /nonexistent/creds: No such file or directory",
        ),
        (["-s", "x", "--timeout", "0", "hello", "hello"], "--timeout 0.0: must be more than 0"),
        (["-s", "x", "--timeout", "soon", "hello", "hello"], "invalid float value: 'soon'"),
        (["--broker", "local", "-s", "x", "hello", "hello"], "there is nothing to reach from here"),
        (
            ["--broker", "http://h/", "-s", "x", "hello", "hello"],
            "expected amqp:// or amqps://, not 'http'",
        ),
        (["hello", "hello"], "no sysname: give -s SYSNAME"),
        (
            ["-s", "x", "--container", "c1", "hello", "ping", "x"],
            "--container c1: give OP [CONTENT], not a SERVICE as well",
        ),
        (["-s", "x", "--container", "a/b", "ping"], "invalid --container 'a/b'"),
    ],
    ids=[
        "missing-op",
        "bad-yaml",
        "date",
        "set",
        "alias",
        "no-credfile",
        "zero-timeout",
        "bad-timeout",
        "local",
        "http",
        "no-sysname",
        "container-and-service",
        "bad-container",
    ],
)
def test_usage_errors_exit_64(args: list[str], message: str) -> None:
    """Bad arguments, --broker local among them, exit 64 with the reason and the usage."""
    done = ion_rpc(*args)
    assert done.returncode == 64, done.stderr
    assert message in done.stderr and "usage: ion-rpc" in done.stderr and done.stdout == ""


def test_unreachable_broker_exits_2_without_printing_the_password() -> None:
    """A broker that cannot be reached exits 2, and the password in its URL is never printed."""
    done = ion_rpc("--broker", "amqp://guest:s3cret@127.0.0.1:1/", "-s", "x", "hello", "hello")
    assert done.returncode == 2
    assert "cannot reach amqp://guest:***@127.0.0.1:1/" in done.stderr
    assert "s3cret" not in done.stderr + done.stdout


@pytest.mark.rabbitmq
def test_several_broker_addresses_one_down(system: str) -> None:
    """--broker takes a cluster's nodes, comma-separated: a node that is down is
    passed over, and the call goes through the next."""
    from tests.rabbit_node import free_port

    down = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    done = ion_rpc("--broker", f"{down},{URL}", "-s", system, "hello", "hello", '"you"')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"value": "Hello there, you"}
