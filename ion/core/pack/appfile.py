"""Load and validate C{.app} and C{.rel} files into frozen definitions.

Files are read by L{ion.core.pack.fileformat} (YAML, or the original's
Python-literal dicts); every problem raises one L{AppFileError} naming the
file, and the field and line when known.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from ion.core.exception import AppFileError
from ion.core.pack.fields import CLASS as _CLASS
from ion.core.pack.fields import MODULE as _MODULE
from ion.core.pack.fields import NAME as _NAME
from ion.core.pack.fields import Fields as _Fields
from ion.core.pack.fields import freeze
from ion.core.pack.fileformat import parse_text, read_file
from ion.core.pack.supervision import SupervisorDefinition, parse_supervisor

PROCESSAPP_MODULE = "ion.core.pack.processapp"
SUPERVISORAPP_MODULE = "ion.core.pack.supervisorapp"
START_TYPES = ("permanent", "transient", "temporary")

APP_FIELDS = frozenset(
    {"type", "name", "description", "version", "mod", "modules", "registered"}
    | {"applications", "needs", "config", "supervisor"}
)
REL_FIELDS = frozenset({"type", "name", "version", "description", "ioncore", "apps"})
ENTRY_FIELDS = frozenset({"name", "version", "config", "args", "processapp", "mult", "start_type"})


class AppRef(NamedTuple):
    """An app asked for by name, optionally with a version (see L{resolve})."""

    name: str
    version: str | None = None


@dataclass(frozen=True)
class AppDefinition:
    """A validated C{.app} file. Mappings are read-only, sequences are tuples."""

    name: str
    version: str = ""
    description: str = ""
    mod: tuple[str, tuple[Any, ...], Mapping[str, Any]] | None = None
    modules: tuple[str, ...] = ()
    registered: tuple[str, ...] = ()
    applications: tuple[AppRef, ...] = ()
    needs: tuple[str, ...] = ()
    config: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    path: Path | None = None
    supervisor: SupervisorDefinition | None = None  # its mod is then the supervisor app


@dataclass(frozen=True)
class ReleaseEntry:
    """One app of a release, with the overrides the release gives it."""

    name: str
    version: str | None = None
    config: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    args: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    processapp: tuple[str, str, str] | None = None
    mult: bool = False
    start_type: str = "temporary"  # what a failing top supervisor means: see app_exit
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ReleaseDefinition:
    """A validated C{.rel} file: apps to start, in list order, with overrides."""

    name: str
    version: str = ""
    description: str = ""
    apps: tuple[ReleaseEntry, ...] = ()
    ioncore: str = ""
    path: Path | None = None


def _check_type(fields: _Fields, expected: str) -> None:
    if "type" not in fields.data:
        fields.fail("type", f"missing (required; must be {expected!r})")
    if fields.data["type"] != expected:
        fields.fail("type", f"must be {expected!r}, not {fields.data['type']!r}")


def _mod(fields: _Fields) -> tuple[str, tuple[Any, ...], Mapping[str, Any]] | None:
    value = fields.get("mod", (str, list, tuple), "[module, [args], {kwargs}]", None)
    if value is None:
        return None
    parts = [value] if isinstance(value, str) else list(value)
    if not 1 <= len(parts) <= 3:
        fields.fail("mod", f"must be [module, [args], {{kwargs}}], got {len(parts)} items")
    module, args, kwargs = (parts + [[], {}][len(parts) - 1 :])[:3]
    if not isinstance(module, str) or not _MODULE.match(module):
        fields.fail("mod", f"first item must be a dotted module name, not {module!r}")
    if not isinstance(args, list | tuple):
        fields.fail("mod", f"second item (args) must be a list, not {args!r}")
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        fields.fail(
            "mod", f"third item (kwargs) must be a mapping with string keys, not {kwargs!r}"
        )
    return (module, freeze(args), freeze(kwargs))


def _applications(fields: _Fields) -> tuple[AppRef, ...]:
    value = fields.get("applications", (list, tuple), "a list of app names", [])
    refs = []
    for item in value:
        if isinstance(item, str) and _NAME.match(item):
            refs.append(AppRef(item))
        elif (
            isinstance(item, list | tuple)
            and len(item) == 2
            and isinstance(item[0], str)
            and _NAME.match(item[0])
            and isinstance(item[1], str)
        ):
            refs.append(AppRef(item[0], item[1]))
        else:
            fields.fail("applications", f"{item!r} is neither a name nor [name, version string]")
    return tuple(refs)


def _needs(fields: _Fields) -> tuple[str, ...]:
    """Service names (as a service declares its own), each once."""
    value = fields.get("needs", (list, tuple), "a list of service names", [])
    names: list[str] = []
    for item in value:
        if not isinstance(item, str) or not _NAME.match(item):
            fields.fail("needs", f"{item!r} is not a service name")
        if item in names:
            fields.fail("needs", f"service {item!r} is listed twice")
        names.append(item)
    return tuple(names)


def parse_app(data: Mapping[str, Any], path: str | os.PathLike[str] = "<string>") -> AppDefinition:
    """Validate the mapping of an C{.app} file into an L{AppDefinition}."""
    fields = _Fields(str(path), data)
    _check_type(fields, "application")
    fields.check_known(APP_FIELDS, "an app")
    supervisor = parse_supervisor(fields)
    mod = _mod(fields)
    if supervisor is not None:
        if mod is not None:
            fields.fail("supervisor", "an app has mod: or supervisor:, not both (see README)")
        mod = (SUPERVISORAPP_MODULE, (), MappingProxyType({}))
    return AppDefinition(
        name=fields.required_str("name"),
        version=fields.version("version"),
        description=fields.get("description", str, "a string", ""),
        mod=mod,
        modules=fields.names("modules"),
        registered=fields.names("registered"),
        applications=_applications(fields),
        needs=_needs(fields),
        config=fields.mapping("config"),
        path=Path(path) if path != "<string>" else None,
        supervisor=supervisor,
    )


def _entry(path: str, index: int, item: Any, line: int | None) -> ReleaseEntry:
    prefix = f"apps[{index}]."
    if isinstance(item, str):
        # Shorthand: "- hello" is {name: hello}.
        item = {"name": item}
    if not isinstance(item, Mapping):
        raise AppFileError(
            path, f"must be a name or a mapping, not {item!r}", field=f"apps[{index}]", line=line
        )
    line = min(getattr(item, "lines", {}).values(), default=line)
    fields = _Fields(path, item, prefix, line)
    fields.check_known(ENTRY_FIELDS, "a release entry")
    processapp = fields.get("processapp", (list, tuple), "[proc_name, module, Class]", None)
    if processapp is not None:
        ok = (
            len(processapp) == 3
            and all(isinstance(p, str) for p in processapp)
            and _NAME.match(processapp[0])
            and _MODULE.match(processapp[1])
            and _CLASS.match(processapp[2])
        )
        if not ok:
            fields.fail("processapp", f"must be [proc_name, module, Class], not {processapp!r}")
        processapp = tuple(processapp)
    return ReleaseEntry(
        name=fields.required_str("name"),
        version=fields.version("version", None),
        config=fields.mapping("config"),
        args=fields.mapping("args"),
        processapp=processapp,
        mult=fields.get("mult", bool, "true or false", False),
        start_type=fields.choice("start_type", START_TYPES, "temporary"),
        line=line,
    )


def parse_release(
    data: Mapping[str, Any], path: str | os.PathLike[str] = "<string>"
) -> ReleaseDefinition:
    """Validate the mapping of a C{.rel} file into a L{ReleaseDefinition}."""
    where = str(path)
    fields = _Fields(where, data)
    _check_type(fields, "release")
    fields.check_known(REL_FIELDS, "a release")
    name = fields.required_str("name")
    if "apps" not in data:
        fields.fail("apps", "missing (required)")
    items = fields.get("apps", (list, tuple), "a list of app entries", [])
    apps_line = fields.lines.get("apps")
    # Entries carry no line of their own when written as bare names; the
    # list's line is the best we have then.
    entries = tuple(_entry(where, i, item, apps_line) for i, item in enumerate(items))
    return ReleaseDefinition(
        name=name,
        version=fields.version("version"),
        description=fields.get("description", str, "a string", ""),
        apps=entries,
        ioncore=fields.version("ioncore"),
        path=Path(path) if path != "<string>" else None,
    )


def load_app(path: str | os.PathLike[str]) -> AppDefinition:
    """Read and validate the C{.app} file at C{path}."""
    return parse_app(read_file(path), path)


def load_release(path: str | os.PathLike[str]) -> ReleaseDefinition:
    """Read and validate the C{.rel} file at C{path}."""
    return parse_release(read_file(path), path)


def loads_app(text: str, path: str | os.PathLike[str] = "<string>") -> AppDefinition:
    """Validate the text of an C{.app} file; C{path} names it in errors."""
    return parse_app(parse_text(text, path), path)


def loads_release(text: str, path: str | os.PathLike[str] = "<string>") -> ReleaseDefinition:
    """Validate the text of a C{.rel} file; C{path} names it in errors."""
    return parse_release(parse_text(text, path), path)


def processapp_definition(entry: ReleaseEntry) -> AppDefinition:
    """The app a release entry with C{processapp} stands for (no C{.app} file needed).

    Its C{mod} runs the generic process app with C{(proc_name, module, Class)};
    the entry's C{args} become spawn args at start, like any app's.
    """
    if entry.processapp is None:
        raise ValueError(f"release entry {entry.name!r} has no processapp")
    return AppDefinition(
        name=entry.name,
        version=entry.version or "",
        description=f"process {entry.processapp[2]} of {entry.processapp[1]}",
        mod=(PROCESSAPP_MODULE, tuple(entry.processapp), MappingProxyType({})),
        config=entry.config,
    )
