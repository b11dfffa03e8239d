"""IonTestCase, the trial base class: the original's method names, cleanup and leftovers.

Run with `python -m twisted.trial tests.test_kit.trial` from the repository root.
"""

from __future__ import annotations

import os
from unittest import mock

from twisted.internet import defer, reactor
from twisted.trial import unittest

from ion.core.exception import ProcessError
from ion.services.hello.service import HelloService, HelloServiceClient
from ion.test import LeftoversError, call_op, next_op, process_factory
from ion.test.trial import IonTestCase

HELLO = {
    "name": "hello1",
    "module": "ion.services.hello.service",
    "class": "HelloService",
    "spawnargs": {"greeting": "hi"},
}


def _noop() -> None:
    pass


class StartContainerTest(IonTestCase):
    """_start_container, _spawn_processes, _get_procid, _get_procinstance, _stop_container."""

    async def test_start_apps_and_call_from_test_sup(self) -> None:
        """start_apps starts the apps; test_sup calls their services."""
        await self._start_container(start_apps=["hello"])
        greeting = await HelloServiceClient(proc=self.test_sup).hello("trial")
        self.assertIn("trial", greeting)
        self.assertTrue(self.sysname.startswith("test-"))
        await self._stop_container()
        self.assertIsNone(self.container)

    async def test_release_and_sysname(self) -> None:
        """rel= starts a release; sysname= names the system."""
        await self._start_container(sysname="trial-named", rel="res/deploy/hello.rel")
        self.assertEqual(self.container.sysname, "trial-named")
        self.assertTrue(self.container.app_manager.is_running("hello"))
        await self._stop_container()

    @defer.inlineCallbacks
    def test_spawn_processes_with_inline_callbacks(self):
        """The helpers return Deferreds, so inlineCallbacks tests yield them as the original's did."""
        yield self._start_container()
        sup = yield self._spawn_processes([HELLO])
        self.assertIs(sup, self.test_sup)
        pid = self._get_procid("hello1")
        proc = self._get_procinstance(pid)
        self.assertIsInstance(proc, HelloService)
        self.assertEqual(proc.args, {"greeting": "hi"})
        self.assertIn(proc, sup.children)
        self.assertIsNone(self._get_procid("nobody"))
        yield self._shutdown_processes()
        self.assertIsNone(self._get_procid("hello1"))
        yield self._stop_container()

    async def test_failed_spawn_stops_the_container(self) -> None:
        """A description that cannot spawn raises, and the container is stopped."""
        await self._start_container()
        container = self.container
        with self.assertRaises(ProcessError):
            await self._spawn_processes([{"name": "x", "module": "no.such", "class": "Thing"}])
        self.assertFalse(container.running)
        self.assertIsNone(self.kit)

    async def test_container_left_running_is_stopped_by_cleanup(self) -> None:
        """A test that forgets _stop_container gets it from a cleanup."""
        started = []
        # Cleanups run last-in first-out: this one, added first, runs after _stop_container's.
        self.addCleanup(lambda: self.assertFalse(started[0].running))
        await self._start_container()
        started.append(self.container)
        self.assertTrue(self.container.running)


class LeftoversTest(IonTestCase):
    """_stop_container fails the test when something stayed."""

    leftover_timeout = 0.05

    async def test_leftover_timer_fails_stop(self) -> None:
        """A timer started by the test and not stopped is named by _stop_container."""
        await self._start_container()
        call = reactor.callLater(60, print)
        try:
            with self.assertRaises(LeftoversError) as caught:
                await self._stop_container()
        finally:
            call.cancel()
        self.assertIn("print", str(caught.exception))

    async def test_timer_firing_during_stop_fails_stop(self) -> None:
        """A timer of the test's that fires once the container has stopped is named too."""
        await self._start_container()
        call = reactor.callLater(60, _noop)
        cleanup = self.kit.brokers.cleanup

        async def cleanup_as_the_timer_comes_due(sysname: str) -> object:
            call.reset(0)  # due now: it fires on the next reactor turn, after the container stopped
            return await cleanup(sysname)

        self.kit.brokers.cleanup = cleanup_as_the_timer_comes_due
        with self.assertRaises(LeftoversError) as caught:
            await self._stop_container()
        self.assertTrue(call.called)
        self.assertIn("delayed call _noop fired after the test ended", str(caught.exception))


class UnreachableRabbitTest(IonTestCase):
    """An unreachable RabbitMQ skips the test, or fails it when CI is set."""

    broker = "amqp://guest:guest@127.0.0.1:1/"

    async def test_skips_off_ci(self) -> None:
        """Without CI the test is skipped, saying why."""
        with mock.patch.dict(os.environ, {"CI": ""}):
            with self.assertRaises(unittest.SkipTest) as caught:
                await self._start_container()
        self.assertIn("not reachable", str(caught.exception))

    async def test_fails_on_ci(self) -> None:
        """With CI set the test fails instead."""
        with mock.patch.dict(os.environ, {"CI": "1"}):
            with self.assertRaises(self.failureException) as caught:
                await self._start_container()
        self.assertIn("CI is set", str(caught.exception))


class OfflineHelpersTest(unittest.TestCase):
    """The broker-free helpers work under trial too."""

    async def test_call_op_and_next_op(self) -> None:
        """call_op answers and next_op sees the call, in a plain trial TestCase."""
        hello = await process_factory(HelloService)
        try:
            waiting = next_op(hello, "hello")
            reply = await call_op(hello, "hello", "offline")
            call = await waiting
        finally:
            await hello.container.stop()
        self.assertEqual(reply.content, {"value": "Hello there, offline"})
        self.assertEqual(call.content, "offline")
