"""Loading .app and .rel files: both formats, validation, one clear error per problem."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ion.core.exception import AppFileError, ConfigurationError
from ion.core.pack import fileformat
from ion.core.pack.appfile import (
    PROCESSAPP_MODULE,
    AppDefinition,
    AppRef,
    ReleaseEntry,
    load_app,
    load_release,
    loads_app,
    loads_release,
    processapp_definition,
)

FILES = Path(__file__).parent / "files"
REPO = Path(__file__).resolve().parents[3]

APP = "type: application\nname: a\n"
REL = "type: release\nname: r\n"


def test_literal_app_loads_unchanged() -> None:
    """The original's Python-literal .app format loads, tuples and None included."""
    app = load_app(FILES / "example_std.app")
    assert app.name == "example_std"
    assert app.version == "0.1"
    assert app.mod == (
        PROCESSAPP_MODULE,
        ("hello_service", "ion.play.hello_service", "HelloService"),
        {"firstSpawnArg": "Here"},
    )
    assert app.modules == ("ion.zapps.example",)
    assert app.registered == ("example",)
    assert app.applications == (AppRef("ioncore"), AppRef("ccagent"))
    assert app.config == {"ion.play.hello_service": {"greeting": None, "loud": True}}
    assert app.path == FILES / "example_std.app"


def test_yaml_and_literal_give_the_same_definition() -> None:
    """The YAML twin of the literal file validates into an equal definition."""
    literal = load_app(FILES / "example_std.app")
    yaml_app = load_app(FILES / "example_std_yaml.app")
    assert dataclasses.replace(yaml_app, path=None) == dataclasses.replace(literal, path=None)


def test_literal_release_loads_unchanged() -> None:
    """The original's literal .rel format loads with processapp tuples and mult."""
    rel = load_release(FILES / "example.rel")
    assert (rel.name, rel.version, rel.ioncore) == ("ExampleRel", "0.1", "0.1")
    assert [e.name for e in rel.apps] == ["ccagent", "scheduler", "example", "example"]
    assert rel.apps[0].config == {"hello": "one"}
    assert rel.apps[1].processapp == (
        "scheduler",
        "ion.services.dm.scheduler.scheduler_service",
        "SchedulerService",
    )
    assert rel.apps[3].args == {"more": "here"} and rel.apps[3].mult is True
    assert rel.apps[1].line == 11


def test_json_file_loads_as_yaml() -> None:
    """A JSON file (true/null are not Python) is read through YAML."""
    app = loads_app('{"type": "application", "name": "j", "config": {"on": true, "x": null}}')
    assert app.config == {"on": True, "x": None}


def test_literal_with_a_call_is_refused(tmp_path: Path) -> None:
    """A literal file that would need eval is refused, naming file and line, and nothing runs."""
    marker = Path("ion-evil-app-ran")  # where eval would have written it: the working directory
    marker.unlink(missing_ok=True)
    with pytest.raises(AppFileError) as info:
        load_app(FILES / "evil.app")
    err = info.value
    assert err.line == 4 and err.path.endswith("evil.app")
    assert "function call" in str(err) and "evil.app:4" in str(err)
    assert not marker.exists()


def test_numeric_version_keeps_its_text() -> None:
    """version: 1.10 stays "1.10" in both formats rather than becoming 1.1."""
    assert loads_app(APP + "version: 1.10\n").version == "1.10"
    assert loads_app('{"type": "application", "name": "a", "version": 1.10}').version == "1.10"


def test_definitions_are_frozen() -> None:
    """Definitions and their mappings cannot be changed after loading."""
    app = loads_app(APP + "config: {k: {j: 1}}\n")
    with pytest.raises(dataclasses.FrozenInstanceError):
        app.name = "b"  # type: ignore[misc]
    with pytest.raises(TypeError):
        app.config["k"]["j"] = 2  # type: ignore[index]


def test_mod_forms() -> None:
    """mod may be a module name, [module], [module, args] or [module, args, kwargs]."""
    assert loads_app(APP + "mod: m.x\n").mod == ("m.x", (), {})
    assert loads_app(APP + "mod: [m.x, [1]]\n").mod == ("m.x", (1,), {})
    assert loads_app(APP + "mod: [m.x, [], {k: v}]\n").mod == ("m.x", (), {"k": "v"})
    assert loads_app(APP).mod is None


def test_applications_with_versions() -> None:
    """applications takes names and [name, version] pairs."""
    app = loads_app(APP + 'applications: [a1, [b1, "2.0"]]\n')
    assert app.applications == (AppRef("a1"), AppRef("b1", "2.0"))


def test_needs_are_service_names() -> None:
    """needs lists services (started nowhere by this app), apart from applications."""
    app = loads_app(APP + "applications: [ioncore]\nneeds: [kv, bank.ledger]\n")
    assert app.needs == ("kv", "bank.ledger")
    assert app.applications == (AppRef("ioncore"),)
    assert loads_app(APP).needs == ()


def test_release_entry_shorthand() -> None:
    """A release entry may be a bare app name."""
    rel = loads_release(REL + "apps: [ioncore, {name: hello, version: '1'}]\n")
    assert rel.apps == (ReleaseEntry("ioncore"), ReleaseEntry("hello", "1"))


def test_processapp_definition() -> None:
    """A processapp entry stands for an app around the generic process app."""
    entry = loads_release(REL + "apps: [{name: s, processapp: [s, m.svc, Svc], config: {k: 1}}]\n")
    app = processapp_definition(entry.apps[0])
    assert isinstance(app, AppDefinition)
    assert app.mod == (PROCESSAPP_MODULE, ("s", "m.svc", "Svc"), {})
    assert (app.name, app.config) == ("s", {"k": 1})


@pytest.mark.parametrize(
    ("text", "field", "line", "words"),
    [
        (APP + "mod: [x\n", None, 4, "malformed YAML"),
        (APP + "foo: 1\n", "foo", 3, "unknown field"),
        ("type: application\n", "name", None, "missing"),
        ("name: a\n", "type", None, "missing"),
        ("type: release\nname: a\n", "type", 1, "must be 'application'"),
        (APP + "modules: m.x\n", "modules", 3, "list of strings"),
        (APP + "modules: [1]\n", "modules", 3, "not a string"),
        (APP + "mod: [1]\n", "mod", 3, "dotted module"),
        (APP + "mod: [m, x]\n", "mod", 3, "args"),
        (APP + "mod: [m, [], [], 4]\n", "mod", 3, "4 items"),
        (APP + "applications: [[a]]\n", "applications", 3, "neither a name"),
        (APP + "config: [1]\n", "config", 3, "mapping"),
        (APP + "needs: kv\n", "needs", 3, "list of service names"),
        (APP + "needs: [[kv]]\n", "needs", 3, "not a service name"),
        (APP + "needs: [k/v]\n", "needs", 3, "not a service name"),
        (APP + "needs: [kv, kv]\n", "needs", 3, "listed twice"),
        (APP + "version: true\n", "version", 3, "string"),
        (APP + "description: 5\n", "description", 3, "string"),
        ("type: application\nname: a/b\n", "name", 2, "not a valid name"),
        (APP + "name: b\n", None, 3, "duplicate key"),
        ("- a\n", None, None, "mapping"),
        ("", None, None, "empty"),
        ('{"type": "application",\n "name": "a"\n "version": "1"}', None, 3, "Python literal"),
    ],
)
def test_bad_app_is_one_clear_error(tmp_path: Path, text, field, line, words) -> None:
    """Each kind of bad .app file gives one AppFileError naming the file and field or line."""
    path = tmp_path / "bad.app"
    path.write_text(text)
    with pytest.raises(AppFileError) as info:
        load_app(path)
    err = info.value
    assert isinstance(err, ConfigurationError)
    assert (err.field, err.line) == (field, line)
    assert words in str(err) and str(path) in str(err)
    if line is not None:
        assert f"{path}:{line}:" in str(err)


@pytest.mark.parametrize(
    ("text", "field", "line", "words"),
    [
        ("type: application\nname: r\napps: []\n", "type", 1, "must be 'release'"),
        (REL, "apps", None, "missing"),
        (REL + "apps: hello\n", "apps", 3, "list"),
        (REL + "apps: [a, {name: b, foo: 1}]\n", "apps[1].foo", 3, "unknown field"),
        (REL + "apps:\n  - name: a\n  - version: '1'\n", "apps[1].name", 5, "missing"),
        (REL + "apps:\n  - name: a\n    mult: yes please\n", "apps[0].mult", 5, "true or false"),
        (REL + "apps:\n  - name: a\n    processapp: [a, m]\n", "apps[0].processapp", 5, "proc"),
        (REL + "apps:\n  - name: a\n    args: [1]\n", "apps[0].args", 5, "mapping"),
        (REL + "apps: [[a]]\n", "apps[0]", 3, "name or a mapping"),
        (REL + "ioncore: [1]\napps: []\n", "ioncore", 3, "string"),
    ],
)
def test_bad_release_is_one_clear_error(tmp_path: Path, text, field, line, words) -> None:
    """Each kind of bad .rel file gives one AppFileError naming the file and field or line."""
    path = tmp_path / "bad.rel"
    path.write_text(text)
    with pytest.raises(AppFileError) as info:
        load_release(path)
    assert (info.value.field, info.value.line) == (field, line)
    assert words in str(info.value) and str(path) in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    """A file that cannot be read is an AppFileError naming it."""
    with pytest.raises(AppFileError, match="nothere.app: cannot read"):
        load_app(tmp_path / "nothere.app")


@pytest.mark.parametrize("path", sorted((REPO / "res/apps").glob("*.app")), ids=lambda p: p.name)
def test_shipped_apps_load(path: Path) -> None:
    """Every shipped .app file is valid and named like its file."""
    assert load_app(path).name == path.stem


@pytest.mark.parametrize("path", sorted((REPO / "res/deploy").glob("*.rel")), ids=lambda p: p.name)
def test_shipped_releases_load(path: Path) -> None:
    """Every shipped .rel file is valid and named like its file."""
    assert load_release(path).name == path.stem


LIT = "{'type': 'application', 'name': 'a', 'config': {'k': %s}}"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (
            REL + "apps:\n  - name: a\n    args: &y {k: *y}\n",
            5,
            "YAML aliases (*y) are not allowed",
        ),
        (
            APP + "config:\n  a: &a [x, x, x]\n  b: &b [*a, *a, *a]\n  c: [*b, *b, *b]\n",
            5,
            "YAML aliases (*a) are not allowed",
        ),
        (APP + "config:\n  a: &a {x: 1}\n  b: {<<: *a}\n", 5, "YAML aliases (*a) are not allowed"),
        (APP + "config: {k: " + "[" * 5000 + "]" * 5000 + "}\n", 3, "nested too deeply"),
        (APP + "config: {k: " + "[" * 150 + "]" * 150 + "}\n", 3, "nested too deeply"),
        (LIT % ("[" * 3000 + "]" * 3000), 1, "nested too deeply"),
        (LIT % ("[" * 150 + "]" * 150), 1, "nested too deeply"),
        (LIT % ("-" * 3000 + "1"), None, "nested too deeply"),
        (APP + "config:\n  k: " + "1" * 5000 + "\n", 4, "number too long (more than 4300 digits)"),
        ("{'type': 'application',\n 'k': " + "1" * 5000 + "}", 2, "number too long"),
    ],
    ids=[
        "recursive-alias",
        "nested-aliases",
        "merge-key",
        "yaml-5000-deep",
        "yaml-150-deep",
        "literal-3000-deep",
        "literal-150-deep",
        "literal-unary-3000",
        "yaml-bignum",
        "literal-bignum",
    ],
)
@pytest.mark.parametrize("libyaml", [True, False], ids=["libyaml", "pure-python"])
def test_aliases_depth_and_huge_numbers_are_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text, line, words, libyaml
) -> None:
    """A YAML alias, nesting past 100 levels or a number Python will not convert is one
    AppFileError naming the file (and line), in either format and on either YAML parser."""
    if not libyaml:
        monkeypatch.setattr(fileformat, "_FastLoader", None)
    elif fileformat._FastLoader is None:
        pytest.skip("PyYAML without libyaml")
    path = tmp_path / ("bad.rel" if text.startswith(REL) else "bad.app")
    path.write_text(text)
    with pytest.raises(AppFileError) as info:
        (load_release if path.suffix == ".rel" else load_app)(path)
    err = info.value
    assert words in str(err) and (err.path, err.line) == (str(path), line)


def test_anchors_alone_and_star_strings_load() -> None:
    """An anchor nothing refers to is harmless; a quoted "*" is no alias."""
    app = loads_app(APP + "config: {a: &x {k: 1}, glob: '*.py'}\n")
    assert app.config == {"a": {"k": 1}, "glob": "*.py"}
