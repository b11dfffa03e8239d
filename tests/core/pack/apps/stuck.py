"""An app whose start (or stop) never finishes: it waits on a Deferred nobody fires.

C{mod: [tests.core.pack.apps.stuck, [], {hang: start|stop, stubborn: bool}]}:
with C{stubborn}, it ignores being cancelled and goes on waiting, as careless
code does.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred

# (call, app name) of every start and stop entered, and of every cancel ignored.
CALLS: list[tuple[str, str]] = []


async def _wait_forever(what: str, name: str, stubborn: bool) -> None:
    while True:
        try:
            await Deferred()
        except CancelledError:
            if not stubborn:
                raise
            CALLS.append((f"ignored cancel of {what}", name))


async def start(
    container: Any,
    starttype: str,
    app_definition: Any,
    *,
    hang: str = "start",
    stubborn: bool = False,
) -> dict[str, Any]:
    """Wait forever, unless it is the stop that hangs."""
    CALLS.append(("start", app_definition.name))
    if hang == "start":
        await _wait_forever("start", app_definition.name, stubborn)
    return {"name": app_definition.name, "stubborn": stubborn}


async def stop(container: Any, state: dict[str, Any]) -> None:
    """Wait forever (reached only when the start finished: hang is stop)."""
    CALLS.append(("stop", state["name"]))
    await _wait_forever("stop", state["name"], state["stubborn"])
