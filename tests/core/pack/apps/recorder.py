"""An app that records its start and stop, and what it was started with."""

from __future__ import annotations

from typing import Any

from ion.core.config import Config

# (event, app name) in the order they happened, across all containers of a test.
EVENTS: list[tuple[str, str]] = []


def start(container: Any, starttype: str, app_definition: Any, *args: Any, **kwargs: Any) -> dict:
    """Record the start; the state is everything start was given."""
    EVENTS.append(("start", app_definition.name))
    return {
        "name": app_definition.name,
        "starttype": starttype,
        "args": args,
        "kwargs": kwargs,
        "config": Config(app_definition.config),
    }


async def stop(container: Any, state: dict) -> None:
    """Record the stop."""
    EVENTS.append(("stop", state["name"]))
