"""A RabbitMQ node of the suite's own, for what the shared broker at 127.0.0.1:5672
does not have (and must not be reconfigured to have): the C{rabbitmq_event_exchange}
plugin, whose C{amq.rabbitmq.event} topic exchange reports C{queue.deleted},
C{connection.closed} and the like.

Fixtures (registered in tests/conftest.py), both per session and started only
when a test first asks for one (a cold boot takes several seconds):

    event_node     the started L{RabbitNode} (C{.url}, C{.boot_seconds}, C{.name})
    event_broker   its AMQP URL, C{amqp://guest:guest@127.0.0.1:<port>/}
    tls_node       a second node with a TLS listener too (C{.tls_url}, C{.pki}): its
                   certificate from a test CA (L{tests.tls.make_pki}), and it demands a
                   client certificate signed by that CA (C{fail_if_no_peer_cert}); its
                   plain port takes the users and vhosts tests make with C{.ctl}

Mark tests that use them C{pytest.mark.rabbitmq}. When RabbitMQ is not installed
or the node cannot start, they are skipped with the reason (and the node's log
tail); with C{$CI} set they fail instead.

The node runs C{/usr/lib/rabbitmq/bin/rabbitmq-server} directly (the /usr/sbin
wrapper su's to the rabbitmq user and resets HOME), with everything under one
temporary directory: config, enabled plugins, mnesia, logs, pid file, and HOME,
so the Erlang cookie it and C{rabbitmqctl} share is its own. It has a unique
node name and ports the OS hands out, so a leftover of a crashed run cannot get
in the way, and listens (AMQP and Erlang distribution) on 127.0.0.1 only. It
uses the epmd already running for the shared broker (Erlang starts one if none is).

Its processes are found by the node name in their environment (Linux's /proc).
It is stopped (C{rabbitmqctl stop}, then SIGTERM, then SIGKILL) and its
directory removed at session end, at interpreter exit if that did not happen,
and by a small watchdog process when pytest dies without either (SIGKILL): the
watchdog waits for its stdin, a pipe from pytest, to close.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Protocol, TypeVar

import pytest

if TYPE_CHECKING:  # (the watchdog runs this file alone, with no tests package to import)
    from tests.tls import Pki

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
SERVER = RABBIT_BIN / "rabbitmq-server"
CTL = RABBIT_BIN / "rabbitmqctl"
HOST = "127.0.0.1"
# The shared broker's ports (AMQP, AMQPS, Erlang distribution, management): never ours.
SHARED_PORTS = frozenset({5671, 5672, 25672, 15672})
EVENT_PLUGINS = ("rabbitmq_event_exchange",)
BOOT_TIMEOUT = 90.0  # a cold boot takes ~4-11 s here; a loaded machine more
STOP_TIMEOUT = 30.0


class NodeStartError(Exception):
    """The node did not come up; the message says why and ends with its log tail."""


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on now (the OS's pick, never a shared-broker port)."""
    while True:
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port not in SHARED_PORTS:
            return port


def _base_env(home: Path) -> dict[str, str]:
    """This environment without RabbitMQ's and Erlang's own settings, with C{home} as HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
    env["HOME"] = str(home)  # where the Erlang cookie is made and read
    env["RABBITMQ_CONF_ENV_FILE"] = "/dev/null"  # not /etc/rabbitmq/rabbitmq-env.conf
    return env


def _ctl_env(name: str, home: Path) -> dict[str, str]:
    """The environment for C{rabbitmqctl -n <name>}: the node's HOME (its cookie) and
    its name in C{RABBITMQ_NODENAME} (the same as C{-n}), so that L{halt} finds and
    ends a C{rabbitmqctl} left waiting on the node, as it does the node's processes."""
    env = _base_env(home)
    env["RABBITMQ_NODENAME"] = name
    return env


def node_pids(name: str) -> list[int]:
    """The processes of node C{name}: those started with C{RABBITMQ_NODENAME=<name>}
    in their environment (the server script, beam and its helpers, and
    C{rabbitmqctl}s run on it)."""
    marker = f"RABBITMQ_NODENAME={name}".encode()
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        if marker in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _gone_within(name: str, timeout: float, reap: subprocess.Popen[bytes] | None) -> bool:
    """Whether node C{name}'s processes are all gone within C{timeout} seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if reap is not None:
            reap.poll()  # leaves no zombie of the server script
        if not node_pids(name):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def halt(name: str, home: Path, server: subprocess.Popen[bytes] | None = None) -> None:
    """Stop node C{name} for good and remove C{home}: C{rabbitmqctl stop}, then
    SIGTERM, then SIGKILL, each with a deadline. Harmless when it is already gone."""
    pidfile = home / "pid"
    _signal_all(node_pids(name), signal.SIGCONT)  # a paused node could not stop
    asked = False
    if node_pids(name) and pidfile.exists():
        asked = True
        try:
            subprocess.run(
                [str(CTL), "-n", name, "stop", str(pidfile)],
                env=_ctl_env(name, home),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=STOP_TIMEOUT,
            )
        except (OSError, subprocess.TimeoutExpired):
            pass
    # SIGTERM makes RabbitMQ stop gracefully too; SIGKILL is the last resort.
    for sig, grace in (
        (None, 5.0 if asked else 0.0),
        (signal.SIGTERM, 10.0),
        (signal.SIGKILL, 5.0),
    ):
        if sig is not None:
            _signal_all(node_pids(name), sig)
        if _gone_within(name, grace, server):
            break
    if server is not None:
        try:
            server.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
    shutil.rmtree(home, ignore_errors=True)


def free_ports(count: int, taken: set[int] | None = None) -> list[int]:
    """C{count} distinct free ports, none of them in C{taken} (which is updated)."""
    taken = set() if taken is None else taken
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in taken:
            taken.add(port)
            ports.append(port)
    return ports


class RabbitNode:
    """One RabbitMQ node in a temporary directory; L{start} it, L{stop} it.

    C{name} defaults to a unique C{iontest_<hex>@localhost}; C{cookie}, when given, is
    written to the node's C{$HOME/.erlang.cookie} (nodes of one cluster share one);
    C{parent} is the directory to make the node's directory in (the system's temp
    directory by default); a node that is not C{supervised} has no watchdog and is
    not stopped at interpreter exit (it outlives the process that started it).
    L{kill}, L{shutdown} and L{spawn} take it down and up again, keeping its data.
    """

    def __init__(
        self,
        plugins: tuple[str, ...] = EVENT_PLUGINS,
        *,
        name: str | None = None,
        cookie: str | None = None,
        parent: Path | None = None,
        supervised: bool = True,
        ports: tuple[int, int] | None = None,
        tls: Pki | None = None,
    ) -> None:
        self.name = name or f"iontest_{uuid.uuid4().hex[:10]}@localhost"
        self.home = Path(tempfile.mkdtemp(prefix="ion-rabbit-", dir=parent))
        self.port, self.dist_port = ports or free_ports(2)
        self.pki = tls
        self.tls_port = free_ports(1, {self.port, self.dist_port})[0] if tls else None
        self.plugins = plugins
        self.cookie = cookie
        self.supervised = supervised
        self.boot_seconds: float | None = None
        self._began = 0.0
        self._files_written = False
        self._server: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._stopped = False

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{HOST}:{self.port}/"

    @property
    def tls_url(self) -> str:
        """The C{amqps://} URL of the TLS listener (a node made with C{tls})."""
        assert self.tls_port is not None, "this node has no TLS listener"
        return f"amqps://guest:guest@{HOST}:{self.tls_port}/"

    def __repr__(self) -> str:
        return f"<RabbitNode {self.name} {self.url}>"

    def _write_files(self) -> None:
        # guest may log in from loopback by default; the client's heartbeat
        # (ion's 10 s) wins over the server's 60 s
        conf = f"listeners.tcp.1 = {HOST}:{self.port}\n"
        if self.pki is not None:
            # verify_peer checks a certificate the client presents, and with
            # fail_if_no_peer_cert a client without one is refused in the handshake.
            conf += (
                f"listeners.ssl.1 = {HOST}:{self.tls_port}\n"
                f"ssl_options.cacertfile = {self.pki.ca}\n"
                f"ssl_options.certfile = {self.pki.server_cert}\n"
                f"ssl_options.keyfile = {self.pki.server_key}\n"
                "ssl_options.verify = verify_peer\n"
                "ssl_options.fail_if_no_peer_cert = true\n"
            )
        (self.home / "rabbitmq.conf").write_text(conf)
        (self.home / "enabled_plugins").write_text(f"[{','.join(self.plugins)}].\n")
        if self.cookie is not None:
            cookie = self.home / ".erlang.cookie"
            cookie.write_text(self.cookie)
            cookie.chmod(0o400)  # Erlang refuses a cookie others may read

    def _server_env(self) -> dict[str, str]:
        env = _base_env(self.home)
        env.update(
            RABBITMQ_NODENAME=self.name,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_CONFIG_FILE=str(self.home / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.home / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(self.home / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.home / "log"),
            RABBITMQ_PID_FILE=str(self.home / "pid"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        return env

    def start(self, timeout: float = BOOT_TIMEOUT) -> RabbitNode:
        """Boot the node and wait until RabbitMQ and its plugins run (L{NodeStartError}
        otherwise, after stopping whatever did start)."""
        self.spawn()
        self.await_boot(timeout)
        return self

    def spawn(self) -> None:
        """Start booting the node (again, after L{kill} or L{shutdown}, with its data);
        L{await_boot} waits for it."""
        if not self._files_written:
            self._write_files()
            self._files_written = True
        self._began = time.monotonic()
        # A killed node leaves its pid file: `rabbitmqctl wait` would read it
        # (or catch the new one half written) instead of waiting for the new one.
        (self.home / "pid").unlink(missing_ok=True)
        with open(self.home / "console.log", "ab") as console:
            self._server = subprocess.Popen(
                [str(SERVER)],
                env=self._server_env(),
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C to pytest is not the node's
            )
        if self.supervised and self._watchdog is None:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-I", __file__, "--watch", self.name, str(self.home)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # outlives pytest's process group
            )
            atexit.register(self.stop)

    def await_boot(self, timeout: float = BOOT_TIMEOUT) -> None:
        """Wait until the node L{spawn} started runs; sets L{boot_seconds}. When it
        does not, stop it for good and raise L{NodeStartError}."""
        try:
            self._await_boot(timeout)
        except NodeStartError as e:
            why = f"{e}\n{self.log_tail()}"
            self.stop()
            raise NodeStartError(why) from None
        self.boot_seconds = time.monotonic() - self._began

    def ctl(self, *args: str, timeout: float = STOP_TIMEOUT) -> str:
        """Run C{rabbitmqctl -n <node> args} with the node's HOME (so its cookie);
        its output, or L{NodeStartError} with it when it fails."""
        try:
            done = subprocess.run(
                [str(CTL), "-n", self.name, *args],
                env=_ctl_env(self.name, self.home),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise NodeStartError(f"rabbitmqctl {' '.join(args)} on {self.name} timed out") from None
        out = (done.stdout + done.stderr).decode(errors="replace")
        if done.returncode != 0:
            raise NodeStartError(
                f"rabbitmqctl {' '.join(args)} on {self.name} exited with {done.returncode}:\n{out}"
            )
        return done.stdout.decode(errors="replace")

    def pids(self) -> list[int]:
        """The node's processes now (none when it is down)."""
        return node_pids(self.name)

    def beam_pid(self) -> int:
        """The pid of the node's Erlang VM (C{beam.smp})."""
        for pid in self.pids():
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip().startswith("beam"):
                    return pid
            except OSError:
                continue
        raise NodeStartError(f"{self.name} has no beam process")

    def kill(self) -> None:
        """SIGKILL the node's processes (beam and its children) and wait until they are gone."""
        _signal_all(self.pids(), signal.SIGKILL)
        if not _gone_within(self.name, STOP_TIMEOUT, self._server):
            raise NodeStartError(f"{self.name} still runs after SIGKILL: {self.pids()}")
        self._reap()

    def shutdown(self) -> None:
        """Stop the node gracefully (C{rabbitmqctl stop}), keeping its data for L{spawn}."""
        self.ctl("stop", str(self.home / "pid"), timeout=STOP_TIMEOUT)
        if not _gone_within(self.name, STOP_TIMEOUT, self._server):
            raise NodeStartError(f"{self.name} still runs after rabbitmqctl stop: {self.pids()}")
        self._reap()

    def _reap(self) -> None:
        if self._server is not None:
            try:
                self._server.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                pass

    def _await_boot(self, timeout: float) -> None:
        assert self._server is not None
        # `rabbitmqctl wait` returns once the pid file is there, the node answers
        # and the rabbit application with its plugins has started.
        waiter = subprocess.Popen(
            [
                str(CTL),
                "-n",
                self.name,
                "wait",
                "--timeout",
                str(int(timeout)),
                str(self.home / "pid"),
            ],
            env=_ctl_env(self.name, self.home),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    waiter.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    pass
                code = self._server.poll()
                if code is not None:
                    raise NodeStartError(f"rabbitmq-server {self.name} exited with {code}")
                if time.monotonic() >= deadline:
                    raise NodeStartError(f"{self.name} did not boot within {timeout:g}s")
        finally:
            if waiter.poll() is None:
                waiter.kill()
            out = waiter.communicate()[0].decode(errors="replace")
        if waiter.returncode != 0:
            raise NodeStartError(f"rabbitmqctl wait exited with {waiter.returncode}:\n{out}")
        try:
            with socket.create_connection((HOST, self.port), timeout=5.0):
                pass
        except OSError as e:
            raise NodeStartError(f"{self.name} booted but AMQP {HOST}:{self.port}: {e}") from None

    def log_tail(self, lines: int = 40) -> str:
        """The first error lines (the cause, usually) and the last C{lines} lines of
        the node's console output and of its log file."""
        parts = []
        for path in [self.home / "console.log", *sorted((self.home / "log").glob("*.log"))]:
            try:
                text = path.read_text(errors="replace").splitlines()
            except OSError:
                continue
            if not text:
                continue
            errors = [line for line in text if "[error]" in line][:10]
            if errors and errors != text[-len(errors) :]:
                parts.append(f"--- {path.name}: its first errors ---\n" + "\n".join(errors))
            parts.append(
                f"--- {path.name}: its last {lines} lines ---\n" + "\n".join(text[-lines:])
            )
        return "\n".join(parts) or "(no log)"

    def stop(self) -> None:
        """Stop the node and remove its directory (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        halt(self.name, self.home, self._server)
        if self._watchdog is not None:
            assert self._watchdog.stdin is not None
            self._watchdog.stdin.close()  # it finds nothing left to do
            try:
                self._watchdog.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
                self._watchdog.wait()


def _unavailable(reason: str) -> NoReturn:
    """Skip the test for C{reason}; fail it when C{CI} is set (as L{tests.rabbit.require_rabbitmq})."""
    if os.environ.get("CI"):
        pytest.fail(f"the test RabbitMQ node is not available and CI is set: {reason}")
    pytest.skip(f"the test RabbitMQ node is not available: {reason} (set CI=1 to fail instead)")


class _Startable(Protocol):
    def start(self) -> object: ...
    def stop(self) -> None: ...


S = TypeVar("S", bound=_Startable)


def start_or_skip(make: Callable[[], S]) -> S:
    """C{make()} and start it (a node or cluster), trying once more when a port was
    taken meanwhile; skip the test (fail it under CI) when RabbitMQ is not there or
    it does not start."""
    if not SERVER.exists() or not CTL.exists():
        _unavailable(f"{SERVER} is not installed (Debian package rabbitmq-server)")
    if not Path("/proc/self/environ").exists():
        _unavailable("finding the node's processes needs Linux's /proc")
    for attempt in (1, 2):
        made = make()
        try:
            made.start()
            return made
        except (NodeStartError, OSError) as e:
            made.stop()
            # Another process may have taken a port between our pick and the node's bind.
            if attempt == 1 and "eaddrinuse" in str(e):
                continue
            _unavailable(f"{type(e).__name__}: {e}")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def event_node() -> Iterator[RabbitNode]:
    """A RabbitMQ node with C{rabbitmq_event_exchange}, started on first use, once per session."""
    node = start_or_skip(lambda: RabbitNode(EVENT_PLUGINS))
    print(f"\n[event_node] {node.name} at {node.url}: cold boot {node.boot_seconds:.2f}s")
    try:
        yield node
    finally:
        began = time.monotonic()
        node.stop()
        print(f"\n[event_node] {node.name} stopped in {time.monotonic() - began:.2f}s")


@pytest.fixture(scope="session")
def event_broker(event_node: RabbitNode) -> str:
    """The AMQP URL of L{event_node}: C{amqp://guest:guest@127.0.0.1:<port>/}."""
    return event_node.url


@pytest.fixture(scope="session")
def tls_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    """A RabbitMQ node with a TLS listener (certificates from a test CA, client
    certificates required) beside its plain one, started on first use, once per session."""
    from tests.tls import make_pki

    pki = make_pki(tmp_path_factory.mktemp("tls-node-pki"))
    node = start_or_skip(lambda: RabbitNode((), tls=pki))
    print(f"\n[tls_node] {node.name} at {node.url}, {node.tls_url}: cold boot "
          f"{node.boot_seconds:.2f}s")  # fmt: skip
    try:
        yield node
    finally:
        node.stop()


def _watch(name: str, home: str) -> None:
    """The watchdog: wait for stdin (a pipe from pytest) to close, then halt the node."""
    try:
        sys.stdin.buffer.read()
    finally:
        halt(name, Path(home))


if __name__ == "__main__" and sys.argv[1:2] == ["--watch"]:
    _watch(sys.argv[2], sys.argv[3])
