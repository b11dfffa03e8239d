"""The system's trace: every container's tap, asked through the agents and
merged on this container's clock (L{ion.core.observe.arcs.merge})."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ion.core.cc import agent_client
from ion.core.observe import arcs

if TYPE_CHECKING:
    from ion.core.process.process import Process


@dataclass
class SystemTrace:
    """The merged rows of the containers that answered.

    @ivar offsets: seconds added to each container's times (its clock's skew
        against this one's, estimated from the round trip).
    @ivar rtt: each answer's round trip, in seconds (the bound on the estimate
        is half of it).
    @ivar last: each container's newest row seq (to ask C{since} next time).
    @ivar gaps: the containers whose rows after C{since} were partly evicted.
    @ivar errors: the containers that did not answer, and why.
    """

    rows: list[dict[str, Any]]
    offsets: dict[str, float] = field(default_factory=dict)
    rtt: dict[str, float] = field(default_factory=dict)
    last: dict[str, int] = field(default_factory=dict)
    gaps: dict[str, list[int]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "offsets": self.offsets,
            "rtt": self.rtt,
            "last": self.last,
            "gaps": self.gaps,
            "errors": self.errors,
        }


async def system_trace(
    caller: Process,
    since: dict[str, int] | None = None,
    limit: int | None = None,
    timeout: float | None = None,
) -> SystemTrace:
    """Every container's rows after its C{since} entry (0 when absent), merged
    on this clock; C{limit} bounds each container's answer to its newest rows."""
    since = since or {}
    container = caller.container
    assert container is not None
    slices: list[dict[str, Any]] = []
    out = SystemTrace([])
    answers = await agent_client.ask_all(
        caller, "get_trace", None, timeout,
        content_for=lambda cid: {"since": since.get(cid, 0), "limit": limit},
    )  # fmt: skip
    for cid, answer, asked, answered in answers:
        if isinstance(answer, BaseException):
            out.errors[cid] = str(answer) or type(answer).__name__
            continue
        if not (
            isinstance(answer, dict)
            and isinstance(answer.get("rows"), list)
            and isinstance(answer.get("now"), int | float)
        ):
            out.errors[cid] = "not a trace"
            continue
        # This container's own rows are on this clock: no estimate needed.
        shift = 0.0 if cid == container.id else arcs.offset(asked, answered, answer["now"])
        out.offsets[cid] = shift
        out.rtt[cid] = answered - asked
        out.last[cid] = answer.get("last", 0)
        if answer.get("gap"):
            out.gaps[cid] = answer["gap"]
        slices.append(answer)
    out.rows = arcs.merge(slices, out.offsets)
    return out
