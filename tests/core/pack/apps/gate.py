"""An app whose start waits for a gate file: shows the ready file waits for every start.

C{mod: [tests.core.pack.apps.gate, [], {waiting: PATH, gate: PATH}]}: start
writes C{waiting}, then returns once C{gate} exists (it runs inside a twistd
subprocess; the test process creates C{gate}).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall


async def start(
    container: Any, starttype: str, app_definition: Any, *, waiting: str, gate: str
) -> str:
    """Announce that start is under way, then wait for the gate file."""
    Path(waiting).write_text("waiting\n")
    opened: Deferred[None] = Deferred()

    def look() -> None:
        if Path(gate).exists():
            loop.stop()

    loop = LoopingCall(look)
    loop.clock = container.reactor
    loop.start(0.01).addCallback(lambda _: opened.callback(None))
    await opened
    return gate


def stop(container: Any, state: str) -> None:
    """Nothing to undo."""
