"""Finding a Process class by the name a user gives."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ion.core.exception import ProcessError
from ion.core.process.lookup import (
    declared_services,
    resolve_process_class,
    resolve_spawnable,
    service_name_of,
)
from ion.core.process.service import ServiceProcess
from ion.services.hello import HelloService


@pytest.fixture(autouse=True)
def forget_test_classes() -> Iterator[None]:
    """Classes a test defines leave ServiceProcess.__subclasses__ when collected."""
    yield
    for name in ("lookup_pkg", "lookup_pkg.two", "lookup_pkg.broken"):
        sys.modules.pop(name, None)
    gc.collect()


def test_a_subclass_inheriting_a_declaration_resolves_to_the_declaring_class() -> None:
    """A subclass inherits the service name; the name still means the class that declares it."""

    class LookupBase(ServiceProcess):
        service_name = "lookup-inherit"

    class LookupChild(LookupBase):
        pass

    assert service_name_of(LookupChild) == "lookup-inherit"
    assert resolve_spawnable("lookup-inherit") is LookupBase


def test_two_classes_declaring_one_name_are_refused_naming_both() -> None:
    """A service name declared by two unrelated classes is ambiguous, and the error names both."""

    class LookupOne(ServiceProcess):
        service_name = "lookup-twice"

    class LookupTwo(ServiceProcess):
        declare = ServiceProcess.service_declare(name="lookup-twice")

    assert {LookupOne, LookupTwo} <= set(declared_services())
    with pytest.raises(
        ProcessError, match=r"several classes declare it \(.*LookupOne, .*LookupTwo"
    ):
        resolve_spawnable("lookup-twice")


def test_a_module_with_two_service_classes_asks_for_module_class(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module naming no single process class is refused, listing what it holds."""
    (tmp_path / "lookup_pkg").mkdir()
    (tmp_path / "lookup_pkg" / "__init__.py").write_text("")
    (tmp_path / "lookup_pkg" / "two.py").write_text(
        "from ion.core.process.service import ServiceProcess\n"
        "class A(ServiceProcess):\n    service_name = '_lookup_a'\n"
        "class B(ServiceProcess):\n    service_name = '_lookup_b'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ProcessError, match=r"found A, B; name one as 'module.Class'"):
        resolve_spawnable("lookup_pkg.two")
    assert resolve_spawnable("lookup_pkg.two.B").__name__ == "B"


def test_a_module_failing_to_import_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module that raises while importing is a ProcessError carrying the reason."""
    (tmp_path / "lookup_pkg").mkdir()
    (tmp_path / "lookup_pkg" / "__init__.py").write_text("")
    (tmp_path / "lookup_pkg" / "broken.py").write_text("raise RuntimeError('half-written')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ProcessError, match="importing it failed: RuntimeError.*half-written"):
        resolve_spawnable("lookup_pkg.broken")


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("HelloService", "expected 'module.Class'"),
        ("ion.services.hello:Nope", "has no 'Nope'"),
        ("ion.core.process.lookup.qualname", "not a Process subclass"),
        (42, "give a Process class"),
    ],
)
def test_resolve_process_class_refuses_what_is_not_one(target: object, why: str) -> None:
    """Only a Process subclass, given as a class or 'module.Class', is taken."""
    with pytest.raises(ProcessError, match=why):
        resolve_process_class(target)
    assert resolve_process_class("ion.services.hello:HelloService") is HelloService
