"""An app whose start spawns a process, then raises: nothing of it may be left running."""

from __future__ import annotations

from typing import Any


async def start(container: Any, starttype: str, app_definition: Any, **kwargs: Any) -> None:
    """Spawn a process, then fail."""
    await container.spawn("ion.services.hello.service:HelloService", name="boom_proc")
    raise RuntimeError("boom app refuses to start")


def stop(container: Any, state: Any) -> None:
    """Never reached: the app never started."""
    raise AssertionError("stop of an app that never started")
