"""The app manager in a running container: start order, refusals, config views, stop."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from ion.core.cc.container import Container
from ion.core.config import DEFAULTS, Config
from ion.core.exception import (
    AppFileError,
    DependencyError,
    IllegalStateError,
    MissingAppError,
)
from ion.core.pack.app_manager import AppInfo, AppStartError
from tests.core.pack.apps import recorder, stuck
from tests.helpers import user_procs

REPO = Path(__file__).resolve().parents[3]
RECORDER = "tests.core.pack.apps.recorder"
HELLO = ["ion.core.pack.processapp", ["{name}", "ion.services.hello.service", "HelloService"]]

MakeContainer = Callable[..., Awaitable[Container]]


@pytest.fixture(autouse=True)
def events() -> Iterator[list[tuple[str, str]]]:
    """The recorder app's start/stop events, empty at the start of each test."""
    recorder.EVENTS.clear()
    yield recorder.EVENTS
    recorder.EVENTS.clear()


def write_app(
    directory: Path,
    name: str,
    deps: list[Any] = (),  # type: ignore[assignment]
    mod: Any = None,
    config: dict[str, Any] | None = None,
    version: str = "1.0",
    file_name: str | None = None,
) -> Path:
    """Write C{<name>.app} (YAML by way of JSON) into C{directory}; return its path."""
    if mod is None:
        mod = [RECORDER, [], {"source": "app"}]
    elif mod == "hello":
        mod = [HELLO[0], [name, *HELLO[1][1:]]]
    fields = {
        "type": "application",
        "name": name,
        "version": version,
        "mod": mod,
        "applications": list(deps),
        "config": config or {},
    }
    path = directory / f"{file_name or name}.app"
    path.write_text(json.dumps(fields, indent=1) + "\n")
    return path


def write_rel(directory: Path, name: str, apps: list[Any], ioncore: str = "") -> Path:
    """Write C{<name>.rel} into C{directory}; return its path."""
    fields = {"type": "release", "name": name, "version": "1", "apps": apps}
    if ioncore:
        fields["ioncore"] = ioncore
    path = directory / f"{name}.rel"
    path.write_text(json.dumps(fields, indent=1) + "\n")
    return path


def app_names(container: Container) -> list[str]:
    return [info.name for info in container.apps()]


@pytest.fixture
def apps_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "apps"
    directory.mkdir()
    return directory


@pytest.fixture
def make(make_container: MakeContainer, apps_dir: Path) -> MakeContainer:
    """C{await make(**config)}: a container whose app path is C{apps_dir}, config merged in."""

    async def make_one(**config: Any) -> Container:
        layered = Config(DEFAULTS).merged({"pack": {"app_path": [str(apps_dir)]}, **config})
        return await make_container(config=layered)

    return make_one


@pytest_twisted.ensureDeferred
async def test_every_container_starts_ioncore_first(container: Container) -> None:
    """A container's first app is ioncore, found without any app path or working directory."""
    assert container.apps() == [AppInfo("ioncore", "0.1", "running", None)]
    assert container.app_manager.name == "app"
    assert list(container)[-1] is container.app_manager


@pytest_twisted.ensureDeferred
async def test_dependencies_start_first_and_a_diamond_once(make, apps_dir, events) -> None:
    """Each app starts after the apps it needs; a shared dependency starts once."""
    write_app(apps_dir, "base")
    write_app(apps_dir, "left", ["base"])
    write_app(apps_dir, "right", ["base"])
    write_app(apps_dir, "top", ["left", "right"])
    c = await make()
    info = await c.start_app("top")
    assert info == AppInfo("top", "1.0", "running", None)
    assert events == [("start", n) for n in ["base", "left", "right", "top"]]
    assert app_names(c) == ["ioncore", "base", "left", "right", "top"]


@pytest_twisted.ensureDeferred
async def test_running_dependencies_are_not_started_again(make, apps_dir, events) -> None:
    """An app whose dependency already runs starts alone."""
    write_app(apps_dir, "base")
    write_app(apps_dir, "user", ["base", "ioncore"])
    c = await make()
    await c.start_app("base")
    await c.start_app("user")
    assert events == [("start", "base"), ("start", "user")]


@pytest_twisted.ensureDeferred
async def test_second_start_is_refused_unless_mult(make, apps_dir, events) -> None:
    """Starting a running app again is refused; with mult it runs twice, and stops both."""
    write_app(apps_dir, "solo")
    c = await make()
    await c.start_app("solo")
    with pytest.raises(IllegalStateError, match="'solo' is already running; pass mult=True"):
        await c.start_app("solo")
    await c.start_app(apps_dir / "solo.app", mult=True)
    assert app_names(c) == ["ioncore", "solo", "solo"]
    await c.stop_app("solo")
    assert app_names(c) == ["ioncore"]
    assert events == [("start", "solo")] * 2 + [("stop", "solo")] * 2
    with pytest.raises(IllegalStateError, match="'solo' is not running"):
        await c.stop_app("solo")


@pytest_twisted.ensureDeferred
async def test_file_name_must_match_its_app_name(make, apps_dir, events) -> None:
    """A .app file whose name differs from how it was asked for is refused, starting nothing."""
    path = write_app(apps_dir, "other", file_name="asked")
    c = await make()
    with pytest.raises(AppFileError) as err:
        await c.start_app(path)
    assert err.value.field == "name" and err.value.line is not None
    assert "does not match the file name 'asked.app'" in str(err.value)
    with pytest.raises(DependencyError, match="with name 'other'"):
        await c.start_app("asked")
    assert events == [] and app_names(c) == ["ioncore"]


@pytest_twisted.ensureDeferred
async def test_version_must_match(make, apps_dir, events) -> None:
    """A requested version, or a dependency's required version, must match the app's."""
    write_app(apps_dir, "lib", version="1.2")
    write_app(apps_dir, "needs_lib2", [["lib", "2"]])
    c = await make()
    with pytest.raises(DependencyError, match="version '1.3', but it is version '1.2'"):
        await c.start_app("lib", version="1.3")
    with pytest.raises(DependencyError, match="needs app 'lib' version '2'"):
        await c.start_app("needs_lib2")
    assert events == []
    await c.start_app("lib", version="1")
    assert events == [("start", "lib")]


@pytest_twisted.ensureDeferred
async def test_cycles_and_missing_apps_fail_before_anything_starts(make, apps_dir, events) -> None:
    """A cycle or a missing app is reported whole, and no app or process is started."""
    write_app(apps_dir, "proc", mod="hello")
    write_app(apps_dir, "a", ["proc", "b"])
    write_app(apps_dir, "b", ["a"])
    write_app(apps_dir, "lost", ["proc", "ghost", "phantom"])
    c = await make()
    with pytest.raises(DependencyError, match="dependency cycle: a -> b -> a"):
        await c.start_app("a")
    with pytest.raises(MissingAppError) as err:
        await c.start_app("lost")
    assert "'ghost' not found" in str(err.value) and "'phantom' not found" in str(err.value)
    rel = write_rel(apps_dir, "broken", ["proc", "nowhere"])
    with pytest.raises(MissingAppError, match="'nowhere' not found"):
        await c.start_rel(rel)
    assert events == [] and app_names(c) == ["ioncore"]
    assert user_procs(c) == {}


@pytest_twisted.ensureDeferred
async def test_apps_stop_in_reverse_start_order(make, apps_dir, events, logs) -> None:
    """Stopping the container stops its apps newest first, before their processes go."""
    write_app(apps_dir, "first")
    write_app(apps_dir, "second", ["first"])
    write_app(apps_dir, "third", ["second"])
    write_app(apps_dir, "served", mod="hello")
    c = await make()
    rel = write_rel(apps_dir, "chain", ["ioncore", "third", "served"])
    started = await c.start_rel(rel)
    assert [a.name for a in started] == ["first", "second", "third", "served"]
    assert {a.release for a in started} == {"chain"}
    proc = c.proc_manager.find("served")
    await c.stop()
    assert events == [("start", n) for n in ["first", "second", "third"]] + [
        ("stop", n) for n in ["third", "second", "first"]
    ]
    assert proc.state == "TERMINATED" and c.apps() == []
    # Its app terminated it (the process manager would have left nothing to terminate).
    assert any(f"terminated process {proc.id}" in text for text in logs.texts())


@pytest_twisted.ensureDeferred
async def test_kwargs_layers_and_apparg(make, apps_dir, events) -> None:
    """Kwargs: mod's < the release entry's args < start_app args < -a apparg_<app>."""
    write_app(apps_dir, "kw", mod=[RECORDER, ["positional"], {"a": "mod", "b": "mod", "c": "mod"}])
    write_app(apps_dir, "kw2", mod=[RECORDER, [], {"a": "mod"}])
    c = await make(apparg_kw={"c": "apparg"}, apparg_kw2="{a: apparg, extra: 1}")
    rel = write_rel(apps_dir, "kwrel", [{"name": "kw", "args": {"a": "entry", "b": "entry"}}])
    await c.start_rel(rel)
    state = c.app_manager._running[-1].state
    assert state["args"] == ("positional",) and state["starttype"] == "normal"
    assert state["kwargs"] == {"a": "entry", "b": "entry", "c": "apparg"}
    await c.start_app("kw2", args={"a": "call", "more": True})
    assert c.app_manager._running[-1].state["kwargs"] == {"a": "apparg", "more": True, "extra": 1}


@pytest_twisted.ensureDeferred
async def test_a_process_sees_its_apps_config(make, apps_dir) -> None:
    """Container config < the .app's config < the release entry's config, for that app only."""
    write_app(apps_dir, "viewed", mod="hello", config={"demo": {"a": "app", "b": "app"}})
    write_app(apps_dir, "plain", mod="hello")
    c = await make(demo={"a": "container", "b": "container", "c": "container"})
    rel = write_rel(
        apps_dir,
        "views",
        [{"name": "viewed", "config": {"demo": {"b": "entry"}}, "args": {"k": 1}}, "plain"],
    )
    await c.start_rel(rel)
    viewed, plain = c.proc_manager.find("viewed"), c.proc_manager.find("plain")
    assert viewed.config.get("demo") == {"a": "app", "b": "entry", "c": "container"}
    assert viewed.args == {"k": 1}
    assert plain.config.get("demo") == {"a": "container", "b": "container", "c": "container"}
    assert c.config.get("demo.b") == "container"
    assert c.app_manager.config_of("viewed").get("demo.b") == "entry"


@pytest_twisted.ensureDeferred
async def test_start_app_config_wins_over_the_app_file(make, apps_dir, events) -> None:
    """start_app(config=...) is layered over the .app's config, for that app only."""
    write_app(apps_dir, "dep")
    write_app(apps_dir, "conf", ["dep"], config={"k": {"x": "app", "y": "app"}})
    c = await make()
    await c.start_app("conf", config={"k": {"y": "call"}})
    assert c.app_manager.config_of("conf").get("k") == {"x": "app", "y": "call"}
    assert c.app_manager.config_of("dep").get("k") is None


@pytest_twisted.ensureDeferred
async def test_shipped_demo_release(make_container: MakeContainer) -> None:
    """The shipped three-app release starts in dependency order with its entries' config and args."""
    c = await make_container(config=Config(DEFAULTS).merged({"pack": {"root": str(REPO)}}))
    started = await c.start_rel(REPO / "res/deploy/demo.rel")
    assert [a.name for a in started] == ["hello", "hello_extra", "hello_demo"]
    assert c.proc_manager.find("hello_demo").config.get("container.rpc_timeout") == 5.0
    assert c.proc_manager.find("hello_extra").args == {"greeting": "hi"}
    assert c.proc_manager.find("hello").config.get("container.rpc_timeout") == 15.0
    started = await c.start_rel("hello")  # by name, from pack.rel_path: all running already
    assert started == []


@pytest_twisted.ensureDeferred
async def test_failing_start_stops_what_the_release_started(make, apps_dir, events) -> None:
    """An app whose start raises: the release's earlier apps stop, newest first; one error names the file."""
    write_app(apps_dir, "early")
    write_app(apps_dir, "early_proc", mod="hello")
    boom = write_app(apps_dir, "boom", mod=["tests.core.pack.apps.boom"])
    write_app(apps_dir, "late")
    c = await make()
    await c.start_app("late")  # running before the release: not the release's to stop
    rel = write_rel(apps_dir, "failing", ["early", "early_proc", "boom", "late"])
    with pytest.raises(AppStartError) as err:
        await c.start_rel(rel)
    text = str(err.value)
    assert text.startswith(f"{boom}:5: field 'mod': app 'boom' failed to start: RuntimeError")
    assert "boom app refuses to start" in text
    assert events == [("start", "late"), ("start", "early"), ("stop", "early")]
    assert app_names(c) == ["ioncore", "late"]
    assert user_procs(c) == {}  # early_proc's and boom's own process are gone


@pytest_twisted.ensureDeferred
async def test_bad_modules_fail_before_anything_starts(make, apps_dir, events) -> None:
    """A module that cannot be imported, or has no start, is one error naming file, field and line."""
    write_app(apps_dir, "fine")
    missing = write_app(apps_dir, "missing", mod=["tests.core.pack.apps.no_such_module"])
    nostart = write_app(apps_dir, "nostart", mod=["tests.core.pack.apps.nostart"])
    c = await make()
    for path, words in [(missing, "cannot import module"), (nostart, "has no start(")]:
        rel = write_rel(apps_dir, f"rel_{path.stem}", ["fine", path.stem])
        with pytest.raises(AppFileError) as err:
            await c.start_rel(rel)
        assert (err.value.path, err.value.field, err.value.line) == (str(path), "mod", 5)
        assert words in str(err.value)
    assert events == [] and app_names(c) == ["ioncore"]


@pytest_twisted.ensureDeferred
async def test_processapp_entry_errors_name_the_release_entry(make, apps_dir) -> None:
    """A release's processapp entry whose module is missing is reported at the entry's line."""
    rel = apps_dir / "procrel.rel"
    rel.write_text(
        "type: release\nname: procrel\napps:\n"
        "  - name: p\n    processapp: [p, tests.core.pack.apps.nothing, Nothing]\n"
    )
    c = await make()
    with pytest.raises(AppFileError) as err:
        await c.start_rel(rel)
    assert (err.value.path, err.value.field, err.value.line) == (str(rel), "apps[0]", 4)
    assert "no module 'tests.core.pack.apps.nothing'" in str(err.value)
    assert user_procs(c) == {}


@pytest_twisted.ensureDeferred
async def test_release_needs_a_matching_ioncore(make, apps_dir, events) -> None:
    """A release asking for another ioncore version is refused at its ioncore field."""
    write_app(apps_dir, "fine")
    rel = write_rel(apps_dir, "future", ["fine"], ioncore="9")
    c = await make()
    with pytest.raises(AppFileError) as err:
        await c.start_rel(rel)
    assert err.value.field == "ioncore" and "needs ioncore '9'" in str(err.value)
    assert events == []


@pytest_twisted.ensureDeferred
async def test_bad_files_are_one_clear_error(make, apps_dir, events) -> None:
    """Malformed YAML, a literal needing eval, and an unknown field each name the file and line."""
    cases = {
        "yamlbad": ("type: application\nname: yamlbad\nmod: [a, b\n", None),
        "evalbad": ('{"type": "application", "name": __import__("os").getcwd()}\n', None),
        "unknown": ("type: application\nname: unknown\nmod: [m]\nflavour: x\n", "flavour"),
    }
    c = await make()
    for name, (text, field) in cases.items():
        path = apps_dir / f"{name}.app"
        path.write_text(text)
        with pytest.raises(AppFileError) as err:
            await c.start_app(path)
        assert err.value.path == str(path) and err.value.line is not None
        assert err.value.field == field
    assert events == [] and app_names(c) == ["ioncore"]


@pytest_twisted.ensureDeferred
async def test_library_app_without_mod_runs_nothing(make, apps_dir, events) -> None:
    """An app without mod is recorded as running once its dependencies have started."""
    write_app(apps_dir, "dep")
    (apps_dir / "lib.app").write_text("type: application\nname: lib\napplications: [dep]\n")
    c = await make()
    await c.start_app("lib")
    assert app_names(c) == ["ioncore", "dep", "lib"]
    await c.stop_app("lib")
    assert events == [("start", "dep")] and app_names(c) == ["ioncore", "dep"]


STUCK = "tests.core.pack.apps.stuck"


@pytest.fixture
def stuck_calls() -> Iterator[list[tuple[str, str]]]:
    """The stuck app's calls, empty at the start of each test."""
    stuck.CALLS.clear()
    yield stuck.CALLS
    stuck.CALLS.clear()


def outcome_of(d: Deferred[Any]) -> list[Any]:
    """What C{d} fired with so far ([] while it has not): a result or a Failure."""
    fired: list[Any] = []
    d.addBoth(lambda result: fired.append(result))
    return fired


@pytest.mark.parametrize("stubborn", [False, True], ids=["cancellable", "ignores-cancel"])
@pytest_twisted.ensureDeferred
async def test_a_start_that_never_finishes_fails_in_time(
    make, apps_dir, events, stuck_calls, stubborn
) -> None:
    """A start still busy after pack.start_timeout is cancelled and fails like any other:
    one error naming the file, the release's earlier apps stopped, the manager free."""
    write_app(apps_dir, "early")
    hang = write_app(apps_dir, "hang", mod=[STUCK, [], {"stubborn": stubborn}])
    write_app(apps_dir, "late")
    c = await make()
    c.app_manager.clock = clock = Clock()
    starting = Deferred.fromCoroutine(c.start_rel(write_rel(apps_dir, "r", ["early", "hang"])))
    fired = outcome_of(starting)
    assert stuck_calls == [("start", "hang")] and events == [("start", "early")]
    clock.advance(59.9)
    assert fired == []
    clock.advance(0.1)
    assert len(fired) == 1 and fired[0].check(AppStartError)
    assert str(fired[0].value) == (
        f"{hang}:5: field 'mod': app 'hang' did not finish starting within 60s"
    )
    assert events == [("start", "early"), ("stop", "early")]
    assert app_names(c) == ["ioncore"] and not c.app_manager._lock.locked
    if stubborn:
        assert stuck_calls[-1] == ("ignored cancel of start", "hang")
    await c.start_app("late")  # nothing is left holding the manager
    assert app_names(c) == ["ioncore", "late"]


@pytest_twisted.ensureDeferred
async def test_an_apps_own_config_sets_its_start_timeout(make, apps_dir, stuck_calls) -> None:
    """pack.start_timeout is read from the app's own view: its .app config may change it."""
    write_app(apps_dir, "hang", mod=[STUCK], config={"pack": {"start_timeout": 2.5}})
    c = await make()
    c.app_manager.clock = clock = Clock()
    fired = outcome_of(Deferred.fromCoroutine(c.start_app("hang")))
    clock.advance(2.5)
    assert fired and "did not finish starting within 2.5s" in str(fired[0].value)


@pytest_twisted.ensureDeferred
async def test_cancelling_a_start_that_ignores_it_frees_the_manager(
    make, apps_dir, stuck_calls
) -> None:
    """Cancelling a start_app (Ctrl-C in the shell) ends it even when the app's start
    ignores the cancel, so later starts and stops are not stuck behind it."""
    write_app(apps_dir, "hang", mod=[STUCK, [], {"stubborn": True}])
    write_app(apps_dir, "late")
    c = await make()
    c.app_manager.clock = Clock()
    starting = Deferred.fromCoroutine(c.start_app("hang"))
    fired = outcome_of(starting)
    starting.cancel()
    assert stuck_calls == [("start", "hang"), ("ignored cancel of start", "hang")]
    assert len(fired) == 1 and fired[0].check(AppStartError)
    assert "CancelledError" in str(fired[0].value)
    assert not c.app_manager._lock.locked and app_names(c) == ["ioncore"]
    await c.start_app("late")
    await c.stop_app("late")


@pytest_twisted.ensureDeferred
async def test_a_stop_that_never_finishes_is_logged_and_dropped(
    make, apps_dir, stuck_calls, logs
) -> None:
    """A stop still busy after pack.start_timeout is logged; the app is dropped all the same."""
    write_app(apps_dir, "slowstop", mod=[STUCK, [], {"hang": "stop", "stubborn": True}])
    c = await make()
    await c.start_app("slowstop")
    c.app_manager.clock = clock = Clock()
    fired = outcome_of(Deferred.fromCoroutine(c.stop_app("slowstop")))
    assert fired == [] and stuck_calls[-1] == ("stop", "slowstop")
    clock.advance(60)
    assert fired == [None] and app_names(c) == ["ioncore"]
    assert logs.texts_with("app slowstop did not finish stopping within 60s")
    assert not c.app_manager._lock.locked


@pytest_twisted.ensureDeferred
async def test_any_error_of_a_modules_import_or_check_names_the_file(
    make, apps_dir, events
) -> None:
    """A module that fails at import with other than ImportError, or whose check raises
    any exception, is one AppFileError naming file, field and line, with the exception."""
    bad_import = write_app(apps_dir, "badimport", mod=["tests.core.pack.apps.badimport"])
    bad_check = write_app(apps_dir, "badcheck", mod=["tests.core.pack.apps.badcheck"])
    c = await make()
    for path, words in [
        (bad_import, "importing module 'tests.core.pack.apps.badimport' failed: "
                     "RuntimeError: badimport refuses to load"),
        (bad_check, "app 'badcheck': check failed: KeyError: 'needed'"),
    ]:  # fmt: skip
        with pytest.raises(AppFileError) as err:
            await c.start_app(path)
        assert (err.value.path, err.value.field, err.value.line) == (str(path), "mod", 5)
        assert str(err.value) == f"{path}:5: field 'mod': {words}"
    assert events == [] and app_names(c) == ["ioncore"]


@pytest_twisted.ensureDeferred
async def test_yaml_aliases_in_an_app_file_are_refused_at_once(make, apps_dir) -> None:
    """Nested aliases, which were copied out into millions of values, are one error."""
    (apps_dir / "laughs.app").write_text(
        "type: application\nname: laughs\nmod: [m]\nconfig:\n"
        "  a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        "  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
        "  d: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    )
    c = await make()
    with pytest.raises(AppFileError) as err:
        await c.start_app("laughs")
    assert (err.value.path, err.value.line) == (str(apps_dir / "laughs.app"), 6)
    assert "YAML aliases (*a) are not allowed" in str(err.value)
