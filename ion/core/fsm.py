"""Helpers for declaring ion's state machines with Automat's C{TypeMachineBuilder}.

Each machine module writes its whole transition table as data,
C{(from_state, input, to_state)} rows, and L{declare} registers every row with
a behaviour that records the new state's name on the machine's core, since
Automat keeps the current state private.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from automat import TypeMachineBuilder


class HasState(Protocol):
    """A machine core that mirrors the current state's name."""

    state: str


def declare(
    builder: TypeMachineBuilder[Any, Any],
    table: Iterable[tuple[Any, Callable[..., Any], Any]],
) -> None:
    """Register every C{(from, input, to)} row of C{table} on C{builder}."""
    for source, inputs, target in table:
        source.upon(inputs).to(target)(_enter(target.name))


def _enter(name: str) -> Callable[..., None]:
    def enter(inputs: Any, core: HasState, *args: Any) -> None:
        core.state = name

    enter.__name__ = f"enter_{name}"
    return enter
