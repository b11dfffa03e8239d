"""Arcs for the chart tests: one of every kind, on lanes of two containers."""

from __future__ import annotations

from ion.core.observe.arcs import Arc

T0 = 1_780_000_000.0  # a fixed time: the charts show it as local HH:MM:SS.mmm


def arc(
    dt: float, src: str, dst: str, kind: str, perf: str = "", op: str = "", **kw: object
) -> Arc:
    """An arc C{dt} seconds after L{T0}."""
    kw.setdefault("conv_id", f"conv-{op}")
    kw.setdefault("protocol", "rpc")
    return Arc(ts=T0 + dt, src=src, dst=dst, kind=kind, performative=perf, op=op, **kw)  # type: ignore[arg-type]


def every_kind() -> list[Arc]:
    """A request and its reply, a call that fails, an event, an exit signal, a
    message to itself and one to a service name, in time order."""
    return [
        arc(0.0, "shell.2@c1", "hello.1@c1", "request", "request", "hello", seq=1),
        arc(
            0.1, "hello.1@c1", "shell.2@c1", "reply", "inform_result", "result", status="OK", seq=2
        ),
        arc(0.2, "shell.2@c1", "hello.1@c1", "request", "request", "nope", seq=3),
        arc(0.3, "hello.1@c1", "shell.2@c1", "failure", "failure", "result", status="ERROR", seq=4),
        arc(0.4, "hello.1@c1", "proc.lifecycle", "event", "", "", protocol="event", seq=5),
        arc(0.5, "sup.3@c2", "hello.1@c1", "exit", "", "sys_exit", protocol="signal", seq=6),
        arc(0.6, "sup.3@c2", "sup.3@c2", "message", "", "tick", protocol="none", seq=7),
        arc(0.7, "sup.3@c2", "store", "message", "", "note", protocol="none", seq=8),
    ]
