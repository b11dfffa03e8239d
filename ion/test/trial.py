"""L{IonTestCase}: the original's trial base class, for suites run with C{python -m twisted.trial}.

    class HelloTest(IonTestCase):
        async def test_hello(self):
            await self._start_container(start_apps=["hello"])
            client = HelloServiceClient()         # finds this test's container
            self.assertIn("you", await client.hello("you"))
            await self._stop_container()

The helpers return Deferreds, so C{await} them in C{async def} tests or C{yield}
them under C{inlineCallbacks}. A container still running at the end of a test
is stopped by a cleanup. Stopping checks for leftovers (broker connections,
queues, delayed calls, sockets; a timer of the test's that fires while the
container stops counts too) and fails the test if there are any.

The broker is the class attribute C{broker} (C{local}, C{amqp} or an AMQP URL;
default C{$ION_TEST_BROKER}, else local). When RabbitMQ is asked for but
unreachable the test is skipped, or fails if C{$CI} is set. Each test gets its
own sysname unless it names one.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial import unittest

from ion.core.cc.container import Container
from ion.core.process import context
from ion.core.process.process import Process
from ion.test.brokers import default_broker, on_ci, parse_broker, unavailable_reason
from ion.test.kit import IonKit, ProcessDescription

# trial runs tests in _trial_temp/; the directory it was started from holds res/.
_START_DIR = os.getcwd()


class IonTestCase(unittest.TestCase):
    """A trial TestCase that starts one ion container per test.

    @cvar broker: C{local}, C{amqp} or an AMQP URL (None: C{$ION_TEST_BROKER}, else local).
    @cvar root: the directory holding C{res/} (None: the directory trial was started in).
    @cvar check_leftovers: fail the test if stopping leaves anything behind.
    @cvar leftover_timeout: how long stopping waits for sockets and timers to go.
    @ivar container: the running container; @ivar test_sup: a process in it to
        call services from; @ivar sysname: the system's name.
    """

    timeout = 20
    broker: str | None = None
    root: str | os.PathLike[str] | None = None
    check_leftovers = True
    leftover_timeout = 2.0

    kit: IonKit | None = None
    container: Container | None = None
    test_sup: Process | None = None
    sysname: str | None = None

    def run(self, result: Any) -> None:  # type: ignore[override]  # trial's run takes a result
        """Run the test (setUp to cleanups) where clients made without arguments
        (C{HelloServiceClient()}) find this test's container."""
        run_in = contextvars.copy_context()  # trial runs the test, and the reactor, in it
        run_in.run(context.entered, context.Here(find=lambda: self.container))
        run_in.run(super().run, result)

    def _start_container(
        self,
        sysname: str | None = None,
        start_apps: Iterable[str | os.PathLike[str]] | None = None,
        rel: str | os.PathLike[str] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> Deferred[Container]:
        """Start the container (and a release, then apps); set C{container} and C{test_sup}.

        C{config} is layered over the project's config (C{res/config} under C{root}).
        """
        return Deferred.fromCoroutine(self._start(sysname, start_apps, rel, config))

    async def _start(
        self,
        sysname: str | None,
        start_apps: Iterable[str | os.PathLike[str]] | None,
        rel: str | os.PathLike[str] | None,
        config: Mapping[str, Any] | None,
    ) -> Container:
        if self.kit is not None:
            await self._stop_container()
        spec = parse_broker(self.broker) if self.broker else default_broker()
        reason = unavailable_reason(spec)
        if reason is not None:
            if on_ci():
                self.fail(f"{reason} (and CI is set, so this is a failure)")
            raise unittest.SkipTest(reason)
        self.kit = IonKit(
            broker=spec,
            sysname=sysname,
            root=self.root if self.root is not None else _START_DIR,
            check_leftovers=self.check_leftovers,
            leftover_timeout=self.leftover_timeout,
        )
        self.addCleanup(self._stop_container)
        self.sysname = self.kit.sysname
        self.container = await self.kit.start_container(
            rel=rel, apps=start_apps or (), config=config
        )
        self.test_sup = await self.container.spawn(Process, name="test_sup")
        return self.container

    def _spawn_processes(
        self, procs: Sequence[ProcessDescription], sup: Process | None = None
    ) -> Deferred[Process]:
        """Spawn described processes as children of C{sup} (default C{test_sup}); fire with C{sup}.

        A description is C{{'name', 'module', 'class', 'spawnargs'}} (see
        L{ion.test.kit.describe_process}). If a spawn fails the container is
        stopped and the error raised.
        """
        return Deferred.fromCoroutine(self._spawn(procs, sup))

    async def _spawn(self, procs: Sequence[ProcessDescription], sup: Process | None) -> Process:
        if self.kit is None or self.test_sup is None:
            raise RuntimeError("call _start_container first")
        sup = sup or self.test_sup
        try:
            await self.kit.spawn_processes(procs, parent=sup)
        except Exception:
            await self._stop_container()
            raise
        return sup

    def _stop_container(self) -> Deferred[None]:
        """Stop the container and check it left nothing behind (does nothing if none runs)."""
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        kit, self.kit = self.kit, None
        self.container = self.test_sup = None
        if kit is not None:
            await kit.stop()

    def _shutdown_processes(self, proc: Process | None = None) -> Deferred[None]:
        """Terminate C{proc} (default C{test_sup}) and its children."""
        target = proc or self.test_sup
        if self.container is None or target is None:
            raise RuntimeError("no container running")
        if target is self.test_sup:
            self.test_sup = None
        return Deferred.fromCoroutine(self.container.terminate(target))

    def _get_procid(self, name: str) -> str | None:
        """The id of the newest process called C{name}, or None."""
        proc = self.kit.find(name) if self.kit is not None else None
        return str(proc.id) if proc is not None else None

    def _get_procinstance(self, pid: str) -> Process | None:
        """The process instance with id C{pid} (or name, or local number), or None."""
        return self.kit.find(pid) if self.kit is not None else None
