"""Dependency resolution of apps and the start plan of releases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ion.core.config import Config
from ion.core.exception import DependencyError, MissingAppError
from ion.core.pack.appfile import AppDefinition, AppRef, load_release, loads_release
from ion.core.pack.resolve import (
    FileAppLoader,
    find_file,
    plan_release,
    resolve,
    version_matches,
)

REPO = Path(__file__).resolve().parents[3]


def catalog(spec: dict[str, list], versions: dict[str, str] | None = None) -> Callable:
    """A loader over apps C{name -> [deps]}, recording every name it was asked for."""
    versions = versions or {}
    apps = {
        name: AppDefinition(
            name=name,
            version=versions.get(name, "1.0"),
            applications=tuple(AppRef(*d) if isinstance(d, tuple) else AppRef(d) for d in deps),
        )
        for name, deps in spec.items()
    }
    asked: list[str] = []

    def load(name: str) -> AppDefinition:
        asked.append(name)
        return apps[name]

    load.asked = asked  # type: ignore[attr-defined]
    return load


def names(apps: list[AppDefinition]) -> list[str]:
    return [a.name for a in apps]


def test_dependencies_start_first() -> None:
    """Each app comes after the apps it needs."""
    load = catalog({"core": [], "b": ["core"], "a": ["b"]})
    assert names(resolve(["a"], load)) == ["core", "b", "a"]


def test_diamond_starts_shared_app_once() -> None:
    """An app needed by two others is started once, before both."""
    load = catalog({"core": [], "left": ["core"], "right": ["core"], "top": ["left", "right"]})
    assert names(resolve(["top"], load)) == ["core", "left", "right", "top"]
    assert load.asked.count("core") == 1


def test_order_is_deterministic_and_follows_declaration() -> None:
    """Deps come in declared order and requested apps in the order given, every time."""
    spec = {"x": [], "y": [], "z": [], "a": ["z", "x"], "b": ["y", "x"]}
    first = names(resolve(["b", "a"], catalog(spec)))
    assert first == ["y", "x", "b", "z", "a"]
    assert names(resolve(["b", "a"], catalog(spec))) == first


def test_requested_twice_is_started_once() -> None:
    """Asking for an app twice, or for an app and its dependency, lists it once."""
    load = catalog({"core": [], "a": ["core"]})
    assert names(resolve(["a", "core", "a"], load)) == ["core", "a"]


@pytest.mark.parametrize(
    ("spec", "cycle"),
    [
        ({"a": ["b"], "b": ["c"], "c": ["a"]}, "a -> b -> c -> a"),
        ({"a": ["a"]}, "a -> a"),
        ({"top": ["a"], "a": ["b"], "b": ["a"]}, "a -> b -> a"),
    ],
)
def test_cycles_are_named(spec: dict, cycle: str) -> None:
    """A dependency cycle is one DependencyError naming the whole cycle."""
    with pytest.raises(DependencyError, match=f"dependency cycle: {cycle}$"):
        resolve([next(iter(spec))], catalog(spec))


def test_missing_apps_all_reported_with_who_needs_them() -> None:
    """Every missing app is named with the apps that need it, in one error."""
    load = catalog({"a": ["ghost", "b"], "b": ["ghost", "phantom"]})
    with pytest.raises(MissingAppError) as info:
        resolve(["a", "nowhere"], load, requester="the command line")
    text = str(info.value)
    assert "app 'ghost' not found" in text and "needed by app 'a', app 'b'" in text
    assert "app 'phantom' not found" in text
    assert "app 'nowhere' not found" in text and "needed by the command line" in text


def test_name_mismatch_is_refused(tmp_path: Path) -> None:
    """A file asked for as 'ems' that calls itself 'EMS' is an error naming both and the file."""
    (tmp_path / "ems.app").write_text("type: application\nname: EMS\n")
    with pytest.raises(DependencyError, match=r"'ems' .*ems\.app.* name 'EMS'"):
        resolve(["ems"], FileAppLoader([tmp_path]))


def test_version_mismatch_is_refused() -> None:
    """A dependency of the wrong version is an error naming who needs which version."""
    load = catalog({"core": [], "a": [("core", "2")]}, {"core": "1.4"})
    with pytest.raises(DependencyError, match=r"app 'a' needs app 'core' version '2'.*'1\.4'"):
        resolve(["a"], load)


def test_requested_version() -> None:
    """A requested (name, version) pair is checked like a dependency."""
    load = catalog({"core": []}, {"core": "1.4.2"})
    assert names(resolve([("core", "1.4")], load)) == ["core"]
    with pytest.raises(DependencyError, match="version '1.5'"):
        resolve([("core", "1.5")], load)


@pytest.mark.parametrize(
    ("wanted", "actual", "ok"),
    [
        (None, "1.2", True),
        ("", "", True),
        ("1.2", "1.2", True),
        ("1", "1.2.3", True),
        ("1.2", "1.2.3", True),
        ("1.2", "1.20", False),
        ("1.2.3", "1.2", False),
        ("2", "1.2", False),
        ("0.1", "0.1a", False),
    ],
)
def test_version_matches(wanted: str | None, actual: str, ok: bool) -> None:
    """Versions match exactly or by leading dot-separated components."""
    assert version_matches(wanted, actual) is ok


def test_file_loader_search_path(tmp_path: Path) -> None:
    """The first directory on the search path that holds the file wins."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (first / "a.app").write_text("type: application\nname: a\nversion: '1'\n")
    (second / "a.app").write_text("type: application\nname: a\nversion: '2'\n")
    (second / "b.app").write_text("type: application\nname: b\napplications: [a]\n")
    loader = FileAppLoader.from_config(
        Config({"pack": {"app_path": ["first", "second"]}}), tmp_path
    )
    assert [(a.name, a.version) for a in resolve(["b"], loader)] == [("a", "1"), ("b", "")]
    assert loader("a") is loader("a")


@pytest.mark.parametrize("name", ["../etc/passwd", ".hidden", "a/b", ""])
def test_file_loader_refuses_paths(tmp_path: Path, name: str) -> None:
    """App names cannot climb out of the search path."""
    with pytest.raises(MissingAppError):
        find_file(name, ".app", [tmp_path])


def test_missing_file_names_search_path(tmp_path: Path) -> None:
    """A missing app's error names the directories searched."""
    with pytest.raises(MissingAppError, match=f"no ghost.app in {tmp_path}"):
        resolve(["ghost"], FileAppLoader([tmp_path]))


def test_shipped_demo_release_plan() -> None:
    """demo.rel starts ioncore, hello, hello_extra, hello_demo, each with its entry."""
    loader = FileAppLoader.from_config(Config({"pack": {"app_path": ["res/apps"]}}), REPO)
    steps = plan_release(load_release(REPO / "res/deploy/demo.rel"), loader)
    assert [s.app.name for s in steps] == ["ioncore", "hello", "hello_extra", "hello_demo"]
    assert all(s.entry is not None and s.entry.name == s.app.name for s in steps)
    assert steps[2].entry.args == {"greeting": "hi"}
    assert steps[3].entry.config == {"container": {"rpc_timeout": 5.0}}


def test_release_adds_unlisted_dependencies() -> None:
    """Apps a release entry needs but does not list start first, with no entry."""
    rel = loads_release("type: release\nname: r\napps: [a]\n")
    steps = plan_release(rel, catalog({"core": [], "a": ["core"]}))
    assert [(s.app.name, s.entry) for s in steps][0] == ("core", None)
    assert steps[1].entry == rel.apps[0]


def test_release_duplicate_needs_mult() -> None:
    """An app listed twice without mult is an error naming the release and the line."""
    rel = loads_release("type: release\nname: r\napps:\n  - name: a\n  - name: a\n", "r.rel")
    with pytest.raises(DependencyError, match=r"release 'r' \(r\.rel\) line 5: .*'a'.*mult"):
        plan_release(rel, catalog({"a": []}))


def test_release_mult_starts_again_in_place() -> None:
    """A mult entry starts its app again, at its place in the list, with its own args."""
    rel = loads_release(
        "type: release\nname: r\napps:\n  - a\n  - {name: a, mult: true, args: {n: 2}}\n  - b\n"
    )
    steps = plan_release(rel, catalog({"a": [], "b": []}))
    assert [s.app.name for s in steps] == ["a", "a", "b"]
    assert steps[1].entry.args == {"n": 2} and steps[0].entry.args == {}


def test_release_processapp_needs_no_file() -> None:
    """processapp entries are synthesized; the loader is never asked for them."""
    rel = loads_release("type: release\nname: r\napps:\n  - {name: s, processapp: [s, m, C]}\n")
    load = catalog({})
    steps = plan_release(rel, load)
    assert [s.app.name for s in steps] == ["s"] and load.asked == []


def test_release_missing_app_fails_before_anything() -> None:
    """A release naming a missing app gives no plan at all."""
    rel = loads_release("type: release\nname: r\napps: [a, ghost]\n")
    with pytest.raises(MissingAppError, match="'ghost' not found.*release 'r'"):
        plan_release(rel, catalog({"a": []}))
