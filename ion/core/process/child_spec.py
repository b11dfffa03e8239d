"""What a supervisor is told: its flags and its children's specs, as OTP has them.

A child spec is data: C{id}, C{start} (a process class, or its C{module:Class}
or dotted name), C{args} (spawn arguments), C{restart} (C{permanent},
C{transient} or C{temporary}), C{shutdown} (seconds, C{brutal_kill} or
C{infinity}; default 5 s for a worker, C{infinity} for a supervisor),
C{type} (C{worker} or C{supervisor}), C{significant}, C{start_timeout}
(seconds to reach ACTIVE, default 30). C{start} may also be a pair
C{(target, args)}.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ion.core.exception import ConfigurationError

PERMANENT, TRANSIENT, TEMPORARY = "permanent", "transient", "temporary"
RESTARTS = (PERMANENT, TRANSIENT, TEMPORARY)
BRUTAL_KILL, INFINITY = "brutal_kill", "infinity"
WORKER, SUPERVISOR = "worker", "supervisor"
ONE_FOR_ONE, ONE_FOR_ALL = "one_for_one", "one_for_all"
REST_FOR_ONE, SIMPLE_ONE_FOR_ONE = "rest_for_one", "simple_one_for_one"
STRATEGIES = (ONE_FOR_ONE, ONE_FOR_ALL, REST_FOR_ONE, SIMPLE_ONE_FOR_ONE)
NEVER, ANY_SIGNIFICANT, ALL_SIGNIFICANT = "never", "any_significant", "all_significant"
AUTO_SHUTDOWNS = (NEVER, ANY_SIGNIFICANT, ALL_SIGNIFICANT)


@dataclass(frozen=True)
class ChildSpec:
    """How a supervisor starts, restarts and stops one child."""

    id: str
    start: Any
    args: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    restart: str = PERMANENT
    shutdown: float | str | None = None  # None: the default of its type
    type: str = WORKER
    significant: bool = False
    start_timeout: float = 30.0

    @classmethod
    def of(cls, data: ChildSpec | dict[str, Any]) -> ChildSpec:
        """A spec from itself or a mapping of its fields, checked.

        @raise ConfigurationError: a field is unknown, missing or has a bad value.
        """
        if isinstance(data, ChildSpec):
            spec = data
        elif isinstance(data, dict):
            unknown = set(data) - set(cls.__dataclass_fields__)
            if unknown:
                raise ConfigurationError(f"child spec: unknown keys {sorted(unknown)}")
            if "id" not in data or "start" not in data:
                raise ConfigurationError(f"child spec {data!r}: needs 'id' and 'start'")
            spec = cls(**data)
        else:
            raise ConfigurationError(f"child spec: expected a mapping, not {data!r}")
        if isinstance(spec.start, tuple):
            target, args = spec.start
            spec = replace(spec, start=target, args={**dict(args or {}), **spec.args})
        return spec.checked()

    def checked(self) -> ChildSpec:
        where = f"child spec {self.id!r}"
        if not isinstance(self.id, str) or not self.id:
            raise ConfigurationError(f"child spec: id must be a non-empty string, not {self.id!r}")
        _one_of(self.restart, RESTARTS, f"{where}: restart")
        _one_of(self.type, (WORKER, SUPERVISOR), f"{where}: type")
        shutdown = self.shutdown
        if shutdown is not None and shutdown not in (BRUTAL_KILL, INFINITY):
            if isinstance(shutdown, bool) or not isinstance(shutdown, int | float) or shutdown < 0:
                raise ConfigurationError(
                    f"{where}: shutdown must be seconds >= 0, 'brutal_kill' or 'infinity', "
                    f"not {shutdown!r}"
                )
        if not isinstance(self.args, dict):
            raise ConfigurationError(f"{where}: args must be a mapping, not {self.args!r}")
        return self

    @property
    def shutdown_budget(self) -> float | str:
        """Seconds to wait for the child's terminate, or C{brutal_kill}/C{infinity}."""
        if self.shutdown is None:
            return INFINITY if self.type == SUPERVISOR else 5.0
        return self.shutdown


@dataclass(frozen=True)
class SupervisorFlags:
    """A supervisor's strategy, restart intensity (restarts within C{period}
    seconds before it gives up) and auto-shutdown rule."""

    strategy: str = ONE_FOR_ONE
    intensity: int = 1
    period: float = 5.0
    auto_shutdown: str = NEVER

    def checked(self) -> SupervisorFlags:
        _one_of(self.strategy, STRATEGIES, "supervisor strategy")
        _one_of(self.auto_shutdown, AUTO_SHUTDOWNS, "supervisor auto_shutdown")
        if isinstance(self.intensity, bool) or not isinstance(self.intensity, int):
            raise ConfigurationError(f"supervisor intensity: expected an int >= 0, "
                                     f"not {self.intensity!r}")  # fmt: skip
        if self.intensity < 0 or not isinstance(self.period, int | float) or self.period <= 0:
            raise ConfigurationError(
                f"supervisor intensity/period: expected >= 0 and > 0, "
                f"not {self.intensity!r}/{self.period!r}"
            )
        return self


def _one_of(value: Any, allowed: tuple[str, ...], where: str) -> None:
    if value not in allowed:
        raise ConfigurationError(f"{where}: expected one of {', '.join(allowed)}, not {value!r}")
