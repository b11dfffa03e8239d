"""Layered configuration: layers, environment mapping, -a parsing, per-app views."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ion.core.config import (
    DEFAULTS,
    Config,
    app_config,
    check_settings,
    config_layers,
    env_layer,
    load_config,
    merge,
    parse_args_option,
    value_sources,
)
from ion.core.exception import ConfigurationError
from ion.core.safe_yaml import StrictCLoader, StrictLoader, YAMLRefused, load_yaml

REPO = Path(__file__).resolve().parents[2]

LAYERS = ["defaults", "ion.yml", "ionlocal.yml", "env", "--config", "-a"]


def _write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def _stack(tmp_path: Path, top: int) -> dict:
    """Set container.rpc_timeout in every layer up to index C{top} (1..5) to its index."""
    root = tmp_path / "root"
    (root / "res/config").mkdir(parents=True)
    kwargs: dict = {"root": root, "environ": {}}
    if top >= 1:
        _write(root / "res/config/ion.yml", {"container": {"rpc_timeout": 1}})
    if top >= 2:
        _write(root / "res/config/ionlocal.yml", {"container": {"rpc_timeout": 2}})
    if top >= 3:
        kwargs["environ"] = {"ION_CONTAINER__RPC_TIMEOUT": "3"}
    if top >= 4:
        kwargs["config_file"] = _write(tmp_path / "extra.yml", {"container": {"rpc_timeout": 4}})
    if top >= 5:
        kwargs["cli_args"] = parse_args_option("container.rpc_timeout=5")
    return kwargs


def test_shipped_ion_yml_equals_defaults() -> None:
    """res/config/ion.yml documents exactly the built-in DEFAULTS."""
    shipped = yaml.safe_load((REPO / "res/config/ion.yml").read_text())
    assert shipped == DEFAULTS


def test_defaults_alone_when_no_files(tmp_path: Path) -> None:
    """With no files, no ION_ variables and no arguments the config is DEFAULTS."""
    config = load_config(root=tmp_path, environ={"HOME": "/x"})
    assert config.as_dict() == DEFAULTS
    assert config.get("container.rpc_timeout") == 15.0


@pytest.mark.parametrize("top", range(1, 6))
def test_each_layer_wins_over_the_one_before(tmp_path: Path, top: int) -> None:
    """The highest layer that sets a key gives its value, and is reported as its source."""
    kwargs = _stack(tmp_path, top)
    assert load_config(**kwargs).get("container.rpc_timeout") == top
    sources = value_sources(config_layers(**kwargs))
    assert sources["container.rpc_timeout"] == (top, LAYERS[top])
    assert sources["broker.url"] == ("local", "defaults")


def test_layers_merge_deeply(tmp_path: Path) -> None:
    """A layer setting one key of a section keeps the section's other keys."""
    config = load_config(root=tmp_path, environ={"ION_BROKER__PREFETCH": "1"})
    assert config.get("broker") == {**DEFAULTS["broker"], "prefetch": 1}


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    """A --config file that does not exist is one ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match="nope.yml"):
        load_config(root=tmp_path, environ={}, config_file=tmp_path / "nope.yml")


def test_malformed_config_file_names_file_and_line(tmp_path: Path) -> None:
    """Malformed YAML in a config file is reported with the file and the line."""
    bad = tmp_path / "res/config/ionlocal.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text("container:\n  rpc_timeout: [1\n")
    with pytest.raises(ConfigurationError, match=r"ionlocal\.yml: malformed YAML, line 3"):
        load_config(root=tmp_path, environ={})


def test_config_file_must_be_a_mapping(tmp_path: Path) -> None:
    """A config file holding a list is refused."""
    path = tmp_path / "list.yml"
    path.write_text("- a\n")
    with pytest.raises(ConfigurationError, match="must hold a mapping"):
        load_config(root=tmp_path, environ={}, config_file=path)


def test_env_mapping() -> None:
    """ION_A__B_C maps to a.b_c with YAML-typed values; other variables are ignored."""
    environ = {
        "ION_CONTAINER__RPC_TIMEOUT": "5",
        "ION_BROKER__URL": "amqp://guest:guest@localhost:5672/",
        "ION_CONTAINER__DEBUG": "true",
        "ION_LOGGING__LEVELS": "{ion.core: debug}",
        "ION_PACK__APP_PATH": "[apps, more/apps]",
        "ION_A__B__C": "",
        "ION_HOME": "/opt/ion",
        "ION___X": "1",
        "PATH": "/bin",
    }
    assert env_layer(environ) == {
        "container": {"rpc_timeout": 5, "debug": True},
        "broker": {"url": "amqp://guest:guest@localhost:5672/"},
        "logging": {"levels": {"ion.core": "debug"}},
        "pack": {"app_path": ["apps", "more/apps"]},
        "a": {"b": {"c": ""}},
    }


def test_parse_args_pairs() -> None:
    """key=value pairs nest dotted keys, type values as YAML and keep bracketed commas."""
    assert parse_args_option("sysname=lab,container.rpc_timeout=5, apps=[a, b],k={x: 1, y: 2}") == {
        "sysname": "lab",
        "container": {"rpc_timeout": 5},
        "apps": ["a", "b"],
        "k": {"x": 1, "y": 2},
    }


def test_parse_args_pair_values() -> None:
    """Quoted values stay strings and values may contain '=' and URLs."""
    assert parse_args_option("sysname='007',url=amqp://u:p@h/?a=b") == {
        "sysname": "007",
        "url": "amqp://u:p@h/?a=b",
    }


@pytest.mark.parametrize(
    "text",
    [
        '{"sysname": "lab", "apparg_hello": {"k": 1}}',
        "{'sysname': 'lab', 'apparg_hello': {'k': 1}}",
        "{sysname: lab, apparg_hello: {k: 1}}",
        "sysname: lab\napparg_hello: {k: 1}",
    ],
)
def test_parse_args_mapping(text: str) -> None:
    """JSON, YAML and the original's Python-dict forms all give the same mapping."""
    assert parse_args_option(text) == {"sysname": "lab", "apparg_hello": {"k": 1}}


def test_parse_args_empty() -> None:
    """No -a text gives no args."""
    assert parse_args_option("  ") == {}


@pytest.mark.parametrize(
    "text",
    ["garbage", "a=1,b", "=1", "a=1,,b=2", "[1, 2]", "{a: [1}", "a='x", "1=2", "{1: a}"],
)
def test_parse_args_rejects_garbage(text: str) -> None:
    """Text that is neither key=value pairs nor a string-keyed mapping is a clear error."""
    with pytest.raises(ConfigurationError, match=r"^-a "):
        parse_args_option(text)


def test_parse_args_never_evaluates() -> None:
    """A Python expression given to -a is data or an error, never run."""
    with pytest.raises(ConfigurationError):
        parse_args_option("__import__('os').system('false')")


def test_app_views_do_not_leak() -> None:
    """Each app's view layers app < release over the base; neither base nor sibling changes."""
    base = load_config(root="/nonexistent", environ={})
    app_defaults = {"container": {"rpc_timeout": 30.0}, "hello": {"greeting": "hi", "n": 1}}
    a = app_config(base, app_defaults, {"hello": {"greeting": "yo"}})
    b = app_config(base, {"other": {"x": [1]}}, None)
    assert a.get("container.rpc_timeout") == 30.0
    assert a.get("hello") == {"greeting": "yo", "n": 1}
    assert a.get("container.terminate_timeout") == 10.0
    assert "hello" not in b and "other" not in a
    assert base.get("container.rpc_timeout") == 15.0
    assert app_defaults["hello"] == {"greeting": "hi", "n": 1}
    b.get("other.x").append(2)
    assert b.get("other.x") == [1]


def test_config_does_not_share_input() -> None:
    """Mutating the dict a Config was made from, or as_dict's result, changes nothing."""
    data = {"a": {"b": [1]}}
    config = Config(data)
    data["a"]["b"].append(2)
    config.as_dict()["a"]["b"].append(3)
    assert config.get("a.b") == [1]


def test_merge_replaces_non_mappings() -> None:
    """merge: mappings merge key by key, anything else replaces."""
    assert merge({"a": {"x": 1, "y": 2}, "b": [1]}, {"a": {"y": 3}, "b": [2]}) == {
        "a": {"x": 1, "y": 3},
        "b": [2],
    }


def test_dotted_keys_reach_module_named_sections() -> None:
    """Old-style module-named sections ("ion.services.x") are reachable by dotted get."""
    config = Config({"ion.services.datastore": {"blobs": "mem"}, "ion": {"core": {"k": 1}}})
    assert config.get("ion.services.datastore.blobs") == "mem"
    assert config.get("ion.core.k") == 1
    assert config.view("ion.services.datastore").get("blobs") == "mem"
    assert config.get("ion.missing.k", "d") == "d"


@pytest.mark.parametrize(
    ("layer", "key", "value", "why"),
    [
        ("-a", "broker.connect_attempts", "abc", "a whole number >= 1, not 'abc' (from -a)"),
        ("-a", "broker.connect_attempts", 0, "a whole number >= 1, not 0"),
        ("env", "container.rpc_timeout", 0, "a number of seconds > 0, not 0 (from env)"),
        ("--config", "broker.prefetch", 2.5, "a whole number >= 0, not 2.5 (from --config)"),
        ("-a", "process.concurrency", True, "a whole number >= 0, not True"),
        ("-a", "broker.handshake_timeout", -1, "a number of seconds > 0, not -1"),
        ("-a", "container.terminate_timeout", float("nan"), "a number of seconds >= 0, not nan"),
        ("-a", "broker.heartbeat", "10.0", "a whole number >= 0, not '10.0'"),
        ("env", "pack.start_timeout", 0, "a number of seconds > 0, not 0 (from env)"),
        ("-a", "agent.heartbeat", 0, "a number of seconds > 0, not 0 (from -a)"),
        ("-a", "agent.dead_after", 0, "a whole number >= 1, not 0"),
        ("-a", "agent.suspect_max", "soon", "a number of seconds > 0, not 'soon'"),
    ],
)
def test_a_bad_numeric_setting_is_named_with_its_layer(
    layer: str, key: str, value: object, why: str
) -> None:
    """A numeric setting that is no number, or out of range, is refused up front:
    the error names the setting, the value and the layer it came from."""
    section, name = key.split(".")
    layers = [("defaults", merge({}, DEFAULTS)), (layer, {section: {name: value}})]
    with pytest.raises(ConfigurationError, match=re.escape(f"{key}: expected {why}")):
        check_settings(layers)


def test_good_numeric_settings_pass() -> None:
    """What their users read as numbers passes: YAML's "1e3" is a string that
    float() reads, 10.0 a whole number that int() reads."""
    good = {
        "broker": {"retry_delay": 0, "handshake_timeout": 2.5, "heartbeat": 10.0},
        "container": {"rpc_timeout": "1e3"},
        "process": {"concurrency": "4"},
        "agent": {"heartbeat": "0.2", "suspect_max": None},  # null: 3·k·H
    }
    check_settings([("defaults", merge({}, DEFAULTS)), ("-a", good)])


LAUGHS = "a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b, *b]\n"
DEEP = "[" * 5000 + "]" * 5000  # past libyaml's own limit (1000)
DEEPISH = "[" * 150 + "]" * 150  # within every parser's reach, past ion's limit
BIG = "1" * 5000  # past Python's int max str digits (4300)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a: &x [*x]\n", "line 1: YAML aliases (*x) are not allowed"),
        ("args: &y {k: *y}\n", "line 1: YAML aliases (*y) are not allowed"),
        (LAUGHS, "line 2: YAML aliases (*a) are not allowed"),
        ("base: &b {x: 1}\nover:\n  <<: *b\n", "line 3: YAML aliases (*b) are not allowed"),
        (f"a: {DEEP}\n", "line 1: nested too deeply (more than 100 levels)"),
        (f"a:\n  b: {DEEPISH}\n", "line 2: nested too deeply (more than 100 levels)"),
        (f"a: {BIG}\n", "line 1: number too long (more than 4300 digits)"),
    ],
    ids=["alias", "recursive", "laughs", "merge", "deep", "deepish", "bignum"],
)
def test_config_file_refuses_aliases_depth_and_huge_numbers(
    tmp_path: Path, text: str, words: str
) -> None:
    """A --config file with a YAML alias, nesting past 100 levels or a number Python
    will not convert is one ConfigurationError naming the file and line, not a
    RecursionError, a ValueError or gigabytes of copies."""
    path = tmp_path / "extra.yml"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as err:
        load_config(root=tmp_path, environ={}, config_file=path)
    assert str(err.value) == f"{path}: {words}"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("&x [*x]", "YAML aliases (*x) are not allowed"),
        (DEEP, "nested too deeply"),
        (BIG, "number too long"),
    ],
    ids=["alias", "deep", "bignum"],
)
def test_env_and_args_refuse_aliases_depth_and_huge_numbers(value: str, words: str) -> None:
    """The same is refused in an ION_ variable (named) and in -a, both forms."""
    with pytest.raises(ConfigurationError, match=re.escape(f"ION_FOO__BAR: line 1: {words}")):
        env_layer({"ION_FOO__BAR": value})
    for text in (f"{{a: {value}}}", f"a={value}"):
        with pytest.raises(ConfigurationError, match=r"^-a ") as err:
            parse_args_option(text)
        assert words in str(err.value) and len(str(err.value)) < 200


@pytest.mark.parametrize(
    ("text", "words", "line"),
    [
        ("a: 1\nb: &x [*x]\n", "YAML aliases (*x) are not allowed", 2),
        (LAUGHS, "YAML aliases (*a) are not allowed", 2),
        (f"a: {DEEP}", "nested too deeply (more than 100 levels)", 1),
        ("".join(f"{' ' * i}k:\n" for i in range(1200)), "nested too deeply", 101),
        (f"a: {DEEPISH}", "nested too deeply (more than 100 levels)", 1),
        (f"a: {BIG}", "number too long (more than 4300 digits)", 1),
    ],
    ids=["alias", "laughs", "deep", "deep-block", "deepish", "bignum"],
)
@pytest.mark.parametrize("parser", [StrictCLoader, None], ids=["libyaml", "pure-python"])
def test_load_yaml_refuses_on_either_parser(text: str, words: str, line: int, parser) -> None:
    """libyaml and the pure-Python parser (PyYAML without libyaml) refuse the same,
    at the same line, and at once (the pure-Python scanner is quadratic in depth)."""
    with pytest.raises(YAMLRefused) as err:
        load_yaml(text, StrictLoader, parser)
    mark = err.value.problem_mark
    assert words in err.value.problem and mark.line + 1 == line


def test_undefined_aliases_and_bad_dates_stay_strings_in_env() -> None:
    """What is not YAML on its own is kept as written: "*.py" is no alias."""
    assert env_layer({"ION_A__GLOB": "*.py", "ION_A__DAY": "2001-13-45"}) == {
        "a": {"glob": "*.py", "day": "2001-13-45"}
    }


def test_anchors_alone_are_fine(tmp_path: Path) -> None:
    """An anchor that nothing refers to is harmless, and allowed."""
    path = tmp_path / "extra.yml"
    path.write_text("a: &x {k: 1}\n")
    assert load_config(root=tmp_path, environ={}, config_file=path).get("a") == {"k": 1}


def test_config_file_not_utf8_is_an_error(tmp_path: Path) -> None:
    """A config file that is not UTF-8 text is one ConfigurationError naming it."""
    path = tmp_path / "extra.yml"
    path.write_bytes(b"a: \xff\xfe\n")
    with pytest.raises(ConfigurationError, match=re.escape(f"{path}: not UTF-8 text")):
        load_config(root=tmp_path, environ={}, config_file=path)
