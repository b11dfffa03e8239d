"""The C{supervisor:} block of an C{.app} file: the app's supervision tree, as data.

    supervisor:
      strategy: one_for_one          # one_for_all, rest_for_one, simple_one_for_one
      intensity: 1                   # restarts allowed within period seconds
      period: 5
      auto_shutdown: never           # any_significant, all_significant
      children:
        - {id: w, start: "my.module:Worker", args: {}, restart: permanent,
           shutdown: 5, significant: false, start_timeout: 30}
        - id: mid
          type: supervisor           # its own strategy/intensity/period/children
          children: [...]

C{start} is C{module:Class} (or C{module} and C{class} apart); a child of type
C{supervisor} needs none (L{ion.core.process.supervisor.Supervisor}). Each
child runs as a process named by its C{id}. Every bad value is an
L{AppFileError} naming the file, the line and the dotted field
(C{supervisor.children[1].restart}); the classes are looked up before anything
starts (L{ion.core.pack.supervisorapp.check}).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ion.core.pack.fields import CLASS, MODULE, NAME, Fields
from ion.core.process import child_spec as cs

SUPERVISOR_CLASS = "ion.core.process.supervisor:Supervisor"
FLAG_FIELDS = frozenset({"strategy", "intensity", "period", "auto_shutdown", "children"})
CHILD_FIELDS = frozenset(
    {"id", "start", "module", "class", "args", "restart", "shutdown", "type"}
    | {"significant", "start_timeout"}
)


@dataclass(frozen=True)
class ChildDefinition:
    """One child of a supervisor, as its C{.app} file gives it."""

    id: str
    start: str  # module:Class
    args: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    restart: str = cs.PERMANENT
    shutdown: float | str | None = None
    type: str = cs.WORKER
    significant: bool = False
    start_timeout: float = 30.0
    supervisor: SupervisorDefinition | None = None  # a supervisor child's own tree
    where: str = field(default="", compare=False)  # its dotted field: supervisor.children[1]
    start_line: int | None = field(default=None, compare=False)

    def spec(self) -> dict[str, Any]:
        """The child spec a L{Supervisor} is given (L{ion.core.process.child_spec})."""
        args = dict(thaw(self.args))
        if self.supervisor is not None:
            args = {**self.supervisor.spawn_args(), **args}
        return {
            "id": self.id,
            "start": self.start,
            "name": self.id,
            "args": args,
            "restart": self.restart,
            "shutdown": self.shutdown,
            "type": self.type,
            "significant": self.significant,
            "start_timeout": self.start_timeout,
        }


@dataclass(frozen=True)
class SupervisorDefinition:
    """A supervisor's flags and children (in start order)."""

    strategy: str = cs.ONE_FOR_ONE
    intensity: int = 1
    period: float = 5.0
    auto_shutdown: str = cs.NEVER
    children: tuple[ChildDefinition, ...] = ()

    def spawn_args(self) -> dict[str, Any]:
        """The spawn arguments of a L{Supervisor} with this tree."""
        return {
            "strategy": self.strategy,
            "intensity": self.intensity,
            "period": self.period,
            "auto_shutdown": self.auto_shutdown,
            "children": [child.spec() for child in self.children],
        }

    def walk(self) -> list[ChildDefinition]:
        """Every child of the tree, depth first."""
        found: list[ChildDefinition] = []
        for child in self.children:
            found.append(child)
            if child.supervisor is not None:
                found += child.supervisor.walk()
        return found


def thaw(value: Any) -> Any:
    """A frozen value (L{freeze}) as plain dicts and lists again."""
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [thaw(item) for item in value]
    return value


def parse_supervisor(fields: Fields) -> SupervisorDefinition | None:
    """The C{supervisor} field of an app (None when there is none)."""
    if "supervisor" not in fields.data:
        return None
    block = fields.located("supervisor", "supervisor.")
    block.check_known(FLAG_FIELDS, "a supervisor")
    return _tree(block)


def _tree(fields: Fields) -> SupervisorDefinition:
    strategy = fields.choice("strategy", cs.STRATEGIES, cs.ONE_FOR_ONE)
    intensity = fields.number("intensity", 1)
    if not isinstance(intensity, int):
        fields.fail("intensity", f"expected a whole number >= 0, not {intensity!r}")
    items = fields.get("children", (list, tuple), "a list of child specs", [])
    line = fields.lines.get("children", fields.line)
    children: list[ChildDefinition] = []
    for i, item in enumerate(items):
        children.append(_child(fields, i, item, line, [c.id for c in children]))
    if strategy == cs.SIMPLE_ONE_FOR_ONE and len(children) != 1:
        fields.fail("children", f"simple_one_for_one takes exactly one child, not {len(children)}")
    return SupervisorDefinition(
        strategy=strategy,
        intensity=intensity,
        period=fields.number("period", 5.0, above=True),
        auto_shutdown=fields.choice("auto_shutdown", cs.AUTO_SHUTDOWNS, cs.NEVER),
        children=tuple(children),
    )


def _child(
    parent: Fields, index: int, item: Any, line: int | None, taken: list[str]
) -> ChildDefinition:
    name = f"{parent.prefix}children[{index}]"
    if not isinstance(item, Mapping):
        where = Fields(parent.path, {}, name + ".", line)
        where.fail(None, f"must be a mapping (id, start, ...), not {item!r}")
    line = min(getattr(item, "lines", {}).values(), default=line)
    fields = Fields(parent.path, item, name + ".", line)
    kind = fields.choice("type", (cs.WORKER, cs.SUPERVISOR), cs.WORKER)
    for key in fields.data:
        if kind == cs.WORKER and key in FLAG_FIELDS:
            fields.fail(str(key), "only a child of type supervisor has its own flags and children")
    fields.check_known(CHILD_FIELDS | FLAG_FIELDS if kind == cs.SUPERVISOR else CHILD_FIELDS,
                       "a child spec")  # fmt: skip
    child_id = fields.required_str("id", NAME)
    if child_id in taken:
        fields.fail("id", f"{child_id!r} is the id of an earlier child")
    shutdown: Any = fields.data.get("shutdown")
    seconds = isinstance(shutdown, int | float) and not isinstance(shutdown, bool)
    if "shutdown" in fields.data and not (
        shutdown in (cs.BRUTAL_KILL, cs.INFINITY) or (seconds and shutdown >= 0)
    ):
        fields.fail("shutdown", f"expected seconds >= 0, brutal_kill or infinity, not {shutdown!r}")
    return ChildDefinition(
        id=child_id,
        start=_start(fields, kind),
        args=fields.mapping("args"),
        restart=fields.choice("restart", cs.RESTARTS, cs.PERMANENT),
        shutdown=shutdown,
        type=kind,
        significant=fields.get("significant", bool, "true or false", False),
        start_timeout=fields.number("start_timeout", 30.0, above=True),
        supervisor=_tree(fields) if kind == cs.SUPERVISOR else None,
        where=name,
        start_line=fields.lines.get("start", fields.lines.get("module", fields.line)),
    )


def _start(fields: Fields, kind: str) -> str:
    """C{module:Class} from C{start}, or from C{module} and C{class}."""
    if "start" in fields.data and ("module" in fields.data or "class" in fields.data):
        fields.fail("start", "give start (module:Class) or module and class, not both")
    if "start" in fields.data:
        value = fields.get("start", str, "a string module:Class", "")
        module, _, cls = value.partition(":")
        if not (MODULE.match(module) and CLASS.match(cls)):
            fields.fail("start", f"expected module:Class, not {value!r}")
        return value
    if "module" in fields.data or "class" in fields.data:
        for key, pattern in (("module", MODULE), ("class", CLASS)):
            if key not in fields.data:
                fields.fail(key, "missing (module and class go together)")
            value = fields.get(key, str, "a string", "")
            if not pattern.match(value):
                fields.fail(key, f"{value!r} is not a valid {key} name")
        return f"{fields.data['module']}:{fields.data['class']}"
    if kind == cs.SUPERVISOR:
        return SUPERVISOR_CLASS
    fields.fail("start", "missing (required for a worker: module:Class)")


__all__ = ["ChildDefinition", "SupervisorDefinition", "parse_supervisor", "thaw"]
