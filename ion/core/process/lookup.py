"""Finding a Process class by what a user names: a class, C{module.Class},
a module that defines one, or a declared service name."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from ion.core.exception import ProcessError
from ion.core.process.process import Process
from ion.core.process.service import ServiceProcess


def resolve_process_class(target: Any) -> type[Process]:
    """A Process subclass from a class or a dotted C{module.Class} / C{module:Class} name."""
    if isinstance(target, type):
        cls = target
    elif isinstance(target, str):
        module_name, sep, attr = target.rpartition(":") if ":" in target else target.rpartition(".")
        if not sep or not module_name:
            raise ProcessError(f"cannot spawn {target!r}: expected 'module.Class'")
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise ProcessError(f"cannot spawn {target!r}: no module {module_name!r} ({e})") from e
        cls = getattr(module, attr, None)
        if cls is None:
            raise ProcessError(f"cannot spawn {target!r}: module {module_name!r} has no {attr!r}")
    else:
        raise ProcessError(f"cannot spawn {target!r}: give a Process class or 'module.Class'")
    if not (isinstance(cls, type) and issubclass(cls, Process)):
        raise ProcessError(f"cannot spawn {target!r}: not a Process subclass")
    return cls


def service_name_of(cls: type) -> str | None:
    """The service a ServiceProcess class declares (None if it declares none)."""
    declared = getattr(cls, "declare", None) or {}
    return declared.get("name") or getattr(cls, "service_name", None)


def declared_services() -> list[type[ServiceProcess]]:
    """Every imported ServiceProcess class that declares a service name."""
    found: list[type[ServiceProcess]] = []
    todo = list(ServiceProcess.__subclasses__())
    while todo:
        cls = todo.pop(0)
        if cls not in found:
            todo.extend(cls.__subclasses__())
            if service_name_of(cls) and not cls.__name__.startswith("_"):
                found.append(cls)
    return found


def qualname(cls: type) -> str:
    """C{module.Class}, as a user would name it."""
    return f"{cls.__module__}.{cls.__qualname__}"


def resolve_spawnable(target: Any) -> type[Process]:
    """A Process class from a class, C{module.Class}, a module defining one, or a service name.

    @raise ProcessError: nothing (or more than one thing) matches, with the reason.
    """
    if not isinstance(target, str):
        return resolve_process_class(target)
    if "." in target or ":" in target:
        try:
            module = importlib.import_module(target) if ":" not in target else None
        except ImportError as e:
            if e.name is None or not target.startswith(e.name):
                raise ProcessError(f"cannot spawn {target!r}: importing it failed: {e}") from e
            module = None  # not a module: maybe module.Class
        except Exception as e:
            raise ProcessError(f"cannot spawn {target!r}: importing it failed: {e!r}") from e
        if module is None:
            return resolve_process_class(target)
        classes = [
            c
            for _, c in inspect.getmembers(module, inspect.isclass)
            if issubclass(c, Process) and c.__module__.startswith(module.__name__)
        ]
        services = [c for c in classes if issubclass(c, ServiceProcess)] or classes
        if len(services) != 1:
            names = ", ".join(c.__name__ for c in services) or "none"
            raise ProcessError(
                f"cannot spawn module {target!r}: expected one process class, found {names}; "
                "name one as 'module.Class'"
            )
        return services[0]
    known = declared_services()
    matches = [c for c in known if service_name_of(c) == target]
    if len(matches) > 1:  # subclasses inherit the declaration: prefer the declaring class
        own = [c for c in matches if "declare" in vars(c) or "service_name" in vars(c)]
        ions = [c for c in own if c.__module__.startswith("ion.")]
        matches = own if len(own) == 1 else ions if len(ions) == 1 else own or matches
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(qualname(c) for c in matches)
        raise ProcessError(f"cannot spawn {target!r}: several classes declare it ({names})")
    names = ", ".join(sorted({service_name_of(c) or "" for c in known})) or "none"
    raise ProcessError(
        f"cannot spawn {target!r}: not a module, a 'module.Class' or a declared service "
        f"(declared: {names})"
    )
