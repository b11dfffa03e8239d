"""What the soak scripts (soak_agent.py, soak_cluster.py) share: how to start
twistd, stopping their container processes, deleting a system's objects, and
running a soak so that Ctrl-C, SIGTERM or an error still cleans up once."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any

from twisted.internet import defer, task

_TWISTD = Path(sys.executable).parent / "twistd"
TWISTD = (
    [str(_TWISTD)]
    if _TWISTD.exists()
    else [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
)


async def stop_processes(
    reactor: Any, procs: Iterable[tuple[str, subprocess.Popen[Any]]], grace: float = 30.0
) -> None:
    """SIGTERM each running process, wait up to C{grace} s for all, kill the rest (said)."""
    procs = list(procs)
    for _name, proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    end = time.monotonic() + grace
    while any(p.poll() is None for _, p in procs) and time.monotonic() < end:
        await task.deferLater(reactor, 0.1, lambda: None)  # a poll, bounded by grace
    for name, proc in procs:
        if proc.poll() is None:
            print(f"{name} still running {grace:g} s after SIGTERM: killed", flush=True)
            proc.kill()
            proc.wait()


async def delete_system(reactor: Any, url: Any, sysname: str, queues: Iterable[str] = ()) -> None:
    """Delete C{queues} and the exchanges of system C{sysname} (errors are printed)."""
    from ion.core.messaging.amqp import AmqpBroker

    try:
        cleaner = AmqpBroker(reactor, url, reconnect=False)
        await cleaner.connect()
        try:
            for queue in queues:
                await cleaner.delete_queue(queue)
            for suffix in ("", ".events", ".containers"):
                await cleaner.delete_exchange(f"ion.{sysname}{suffix}")
        finally:
            await cleaner.close()
    except Exception as e:
        print(f"cleanup of {sysname} failed: {type(e).__name__}: {e}", flush=True)


class Once:
    """Runs C{cleanup()} the first time it is called; every call waits for that run."""

    def __init__(self, cleanup: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._cleanup = cleanup
        self._running: defer.Deferred[None] | None = None

    def __call__(self) -> defer.Deferred[None]:
        if self._running is None:
            self._running = defer.Deferred.fromCoroutine(self._cleanup())
        done: defer.Deferred[None] = defer.Deferred()
        self._running.addBoth(lambda _: done.callback(None))
        return done


async def run_soak(reactor: Any, soak: Coroutine[Any, Any, Any], cleanup: Once, what: str) -> Any:
    """Run C{soak}, then C{cleanup}, also when the reactor stops first (Ctrl-C,
    SIGTERM: C{what} is stopped, exit 130); return what the soak returned."""
    soaking = defer.Deferred.fromCoroutine(soak)

    def stopping() -> defer.Deferred[None]:  # the reactor stops: Ctrl-C, SIGTERM, or the end
        if not soaking.called:
            print(f"interrupted: stopping {what}", file=sys.stderr, flush=True)
            soaking.cancel()
        return cleanup()

    reactor.addSystemEventTrigger("before", "shutdown", stopping)
    try:
        return await soaking
    except defer.CancelledError:
        raise SystemExit(130) from None
    finally:
        began = time.monotonic()
        await cleanup()
        print(f"cleanup ({what}) took {time.monotonic() - began:.1f}s", flush=True)
