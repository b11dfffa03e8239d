"""Configuration: nested mappings read through dotted keys, merged in layers.

A L{Config} is immutable: merging returns a new one, so an app's or process's
view never changes what another sees, and values are read when used.

The container's configuration is built from these layers, each winning over
the one before it (L{config_layers}, L{load_config}):

    1. C{defaults}     L{DEFAULTS}, built in
    2. C{ion.yml}      C{<root>/res/config/ion.yml}, or else ion's own (package data,
                       documents every key)
    3. C{ionlocal.yml} C{<root>/res/config/ionlocal.yml} (optional, git-ignored)
    4. C{env}          C{ION_<SECTION>__<KEY>} variables, see L{env_layer}
    5. C{--config}     a YAML file named on the command line
    6. C{-a}           container args from the command line, see L{parse_args_option}

An app sees its own view on top of that: container < its C{.app} config <
its release entry's config (L{app_config}).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ion.core.exception import ConfigurationError
from ion.core.safe_yaml import YAMLRefused, load_yaml

# Built-in defaults: the first layer, under every other. res/config/ion.yml
# repeats them with comments (a test keeps the two equal).
DEFAULTS: dict[str, Any] = {
    "container": {
        "rpc_timeout": 15.0,
        "terminate_timeout": 10.0,
        "conversation_timeout": 60.0,
    },
    "broker": {
        "url": "local",
        "shuffle": True,
        "queue_type": "auto",
        "prefetch": 32,
        "max_message_size": 134217728,
        "restore_timeout": 60.0,
        "max_unconfirmed": 1000,
        "secure": False,
    },
    "process": {"concurrency": 0, "handler_timeout": 0, "max_redeliveries": 5},
    "logging": {
        "format": "text",
        "level": "info",
        "levels": {"ion": "info"},
        "drop_interval": 10.0,
        "drop_top": 20,
    },
    "pack": {
        "app_path": ["res/apps"],
        "rel_path": ["res/deploy"],
        "root": None,
        "start_timeout": 60.0,
        "needs_timeout": 30.0,
    },
    "shell": {"history": "~/.cchistory", "user": None},
    "observer": {"tap": True, "tap_size": 2000},
    "web": {"listen": None, "actions": False, "token_file": None},
    "agent": {
        "enabled": True,
        "heartbeat": 1.0,
        "dead_after": 3,
        "suspect_max": None,
        "ttl_dead": 60.0,
        "presence": "auto",
        "info_timeout": 2.0,
        "spawn_allow": [],
    },
    "security": {
        "signing": False,
        "key_file": None,
        "max_skew": 300,
        "replay_cache": 100000,
        "join_check": None,
        "policy": None,
    },
    "gateway": {
        "http": "127.0.0.1:8070",
        "max_body": 1048576,
        "auth": {"remote_user": False, "tokens": {}},
        "token_file": None,
        "data_dir": "ion-data",
        "database": None,
        "allow_targets": [],
        "services": [],
        "match_lease": 10.0,
        "retention": 604800.0,
        "delivery": {
            "timeout": 10.0,
            "max_attempts": 8,
            "backoff": 0.5,
            "backoff_max": 30.0,
            "lease": 30.0,
            "concurrency": 32,
        },
    },
}

ENV_PREFIX = "ION_"
ENV_SEPARATOR = "__"
ION_YML = Path("res/config/ion.yml")
IONLOCAL_YML = Path("res/config/ionlocal.yml")

_MISSING = object()


def _copy(value: Any) -> Any:
    """A deep copy of plain data: mappings become dicts, lists and tuples are copied."""
    if isinstance(value, Mapping):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_copy(item) for item in value)
    return value


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge C{over} onto C{base}: mappings merge, anything else replaces.

    The result shares nothing mutable with either argument.
    """
    out = _copy(base)
    for key, value in over.items():
        old = out.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            out[key] = merge(old, value)
        else:
            out[key] = _copy(value)
    return out


def _lookup(node: Any, parts: list[str]) -> Any:
    """Walk C{parts} down C{node}; a key may itself contain dots (C{"ion.core"})."""
    if not parts:
        return node
    if not isinstance(node, Mapping):
        return _MISSING
    # Nested keys first; then dotted keys, so module-named sections of old
    # configs ({"ion.services.x": {...}}) and logging levels stay reachable.
    for i in range(1, len(parts) + 1):
        key = ".".join(parts[:i])
        if key in node:
            found = _lookup(node[key], parts[i:])
            if found is not _MISSING:
                return found
    return _MISSING


class Config:
    """A read-only view of nested configuration with dotted-key access."""

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = merge({}, data or {})

    def get(self, key: str, default: Any = None) -> Any:
        """The value at dotted C{key} (C{"container.rpc_timeout"}), or C{default}.

        Mutable values are copies, so callers cannot change this Config.
        """
        found = _lookup(self._data, key.split("."))
        return default if found is _MISSING else _copy(found)

    def view(self, key: str) -> Config:
        """The sub-tree at dotted C{key} as a Config (empty when absent)."""
        sub = self.get(key, {})
        return Config(sub if isinstance(sub, Mapping) else {})

    def merged(self, over: Mapping[str, Any]) -> Config:
        """A new Config with C{over} merged on top of this one."""
        return Config(merge(self._data, over))

    def as_dict(self) -> dict[str, Any]:
        """A deep copy of the whole tree."""
        return merge({}, self._data)

    def __contains__(self, key: str) -> bool:
        return _lookup(self._data, key.split(".")) is not _MISSING

    def __repr__(self) -> str:
        from ion.core.log import redact_mapping  # (log reads Config: imported when shown)

        return f"Config({redact_mapping(self._data)!r})"


# -- layers -----------------------------------------------------------------


def _yaml_scalar(text: str, where: str) -> Any:
    """C{text} read as one YAML value; an empty string stays empty, and text that is
    not YAML on its own (e.g. "a: b: c") stays as written.

    @raise ConfigurationError: YAML ion refuses (L{YAMLRefused}), naming C{where}.
    """
    if text == "":
        return ""
    try:
        return load_yaml(text, fast=None)  # one short value: the pure-Python parser, as ever
    except YAMLRefused as exc:
        raise ConfigurationError(f"{where}: {_yaml_problem(exc)}") from None
    except yaml.YAMLError:
        return text


def _nest(path: Sequence[str], value: Any) -> dict[str, Any]:
    """C{{"a": {"b": value}}} for C{path} C{["a", "b"]}."""
    out: Any = value
    for part in reversed(path):
        out = {part: out}
    return out


def env_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    """The configuration named by C{ION_...} environment variables.

    C{ION_CONTAINER__RPC_TIMEOUT=5} sets C{container.rpc_timeout} to 5: strip
    C{ION_}, split on C{__} (double underscore), lower-case each part. Values
    are read as YAML (L{load_yaml}), so C{5} is an int, C{true} a bool and
    C{"{ion.core: debug}"} a mapping (the way to set keys that contain dots).
    Only names with at least one C{__} are mapped: a top-level key cannot be set
    from the environment, and unrelated C{ION_*} variables are left alone.
    """
    out: dict[str, Any] = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].split(ENV_SEPARATOR)
        if len(parts) < 2 or not all(parts):
            continue
        value = _yaml_scalar(environ[name], name)
        out = merge(out, _nest([p.lower() for p in parts], value))
    return out


_KEY = re.compile(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*\Z")


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside quotes and brackets, so values may hold commas."""
    pieces, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            pieces.append(text[start:i])
            start = i + 1
    if quote or depth:
        raise ConfigurationError(f"-a {text!r}: unbalanced quotes or brackets")
    pieces.append(text[start:])
    return pieces


def parse_args_option(text: str) -> dict[str, Any]:
    """Parse the container args given with C{-a}, never with C{eval}.

    Two forms:
      - a YAML or JSON mapping (the text starts with C{"{"} or is a YAML
        block mapping): taken as written, C{-a "{sysname: lab, app: {k: 1}}"};
        the original's Python dict literals are valid YAML flow mappings;
      - C{key=value} pairs separated by commas: C{-a sysname=lab,container.rpc_timeout=5}.
        A dotted key nests (C{container.rpc_timeout}); values are read as YAML
        (so C{5} is an int; quote to keep a string: C{sysname='"007"'}); commas
        inside quotes or brackets do not split (C{apps=[a, b]}).

    Anything else raises L{ConfigurationError} saying what was wrong; YAML
    aliases, deep nesting and overlong numbers are refused (L{YAMLRefused}).
    """
    text = text.strip()
    if not text:
        return {}
    where = f"-a {_shown(text)}"
    first = text.split("=", 1)[0]
    if text.startswith("{") or ("=" not in text) or not _KEY.match(first.strip()):
        try:
            data = load_yaml(text, fast=None)
        except YAMLRefused as exc:
            raise ConfigurationError(f"{where}: {_yaml_problem(exc)}") from None
        except yaml.YAMLError as exc:
            raise ConfigurationError(
                f"{where}: neither key=value pairs nor a YAML mapping ({_yaml_problem(exc)})"
            ) from None
        if not isinstance(data, Mapping):
            raise ConfigurationError(
                f"{where}: expected key=value pairs or a mapping, got {type(data).__name__}"
            )
        bad = [key for key in data if not isinstance(key, str)]
        if bad:
            raise ConfigurationError(f"{where}: keys must be strings, got {bad[0]!r}")
        return merge({}, data)
    out: dict[str, Any] = {}
    for piece in _split_top_level(text):
        key, sep, value = piece.partition("=")
        key = key.strip()
        if not sep or not _KEY.match(key):
            raise ConfigurationError(
                f"{where}: {_shown(piece.strip())} is not key=value with a key like a.b_c"
            )
        out = merge(out, _nest(key.split("."), _yaml_scalar(value.strip(), where)))
    return out


def _shown(text: str) -> str:
    """C{text} quoted for an error message, cut short when long (a 5000-deep value)."""
    return repr(text) if len(text) <= 80 else f"{text[:60]!r}... ({len(text)} characters)"


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A one-line description of a YAML error, with its line when known."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"line {mark.line + 1}: {problem}" if mark is not None else problem


def read_yaml_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping in YAML file C{path} (empty file: {}); errors name the file and line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read config file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"{path}: not UTF-8 text") from None
    try:
        data = load_yaml(text)
    except YAMLRefused as exc:
        raise ConfigurationError(f"{path}: {_yaml_problem(exc)}") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: malformed YAML, {_yaml_problem(exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigurationError(
            f"{path}: a config file must hold a mapping, not {type(data).__name__}"
        )
    return merge({}, data)


def config_layers(
    root: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
    cli_args: Mapping[str, Any] | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """The layers of the container config, lowest first, as C{(name, data)} pairs.

    C{root} is the directory holding C{res/} (default: the working directory);
    C{ion.yml} is ion's own when C{root} has none; C{ionlocal.yml} is skipped
    when absent, a C{config_file}
    that is absent is an error. C{environ} defaults to C{os.environ}.
    """
    base = Path(root) if root is not None else Path.cwd()
    layers: list[tuple[str, dict[str, Any]]] = [("defaults", merge({}, DEFAULTS))]
    for name, rel in (("ion.yml", ION_YML), ("ionlocal.yml", IONLOCAL_YML)):
        path = base / rel
        if name == "ion.yml" and not path.is_file():
            from ion.core.pack.places import CONFIG, package_dir

            path = package_dir(CONFIG) / rel.name
        if path.is_file():
            layers.append((name, read_yaml_file(path)))
    layers.append(("env", env_layer(os.environ if environ is None else environ)))
    if config_file is not None:
        layers.append(("--config", read_yaml_file(config_file)))
    layers.append(("-a", merge({}, cli_args or {})))
    return layers


def load_config(
    root: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
    cli_args: Mapping[str, Any] | None = None,
) -> Config:
    """The container's Config: every layer of L{config_layers} merged in order."""
    data: dict[str, Any] = {}
    for _name, layer in config_layers(root, environ, config_file, cli_args):
        data = merge(data, layer)
    return Config(data)


def _leaves(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_leaves(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def value_sources(layers: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, tuple[Any, str]]:
    """For C{--show-config}: each effective leaf key -> C{(value, layer name)}.

    A layer that replaces a mapping with a scalar (or the reverse) hides the
    keys it replaced, as the merge does.
    """
    merged: dict[str, Any] = {}
    source: dict[str, str] = {}
    for name, layer in layers:
        merged = merge(merged, layer)
        for key in _leaves(layer):
            source[key] = name
    return {key: (value, source.get(key, "?")) for key, value in sorted(_leaves(merged).items())}


def app_config(
    base: Config,
    app_defaults: Mapping[str, Any] | None = None,
    rel_overrides: Mapping[str, Any] | None = None,
) -> Config:
    """One app's own view: container config < its C{.app} config < its release entry's.

    Returns a new Config; C{base} and the mappings given are left unchanged.
    """
    return base.merged(app_defaults or {}).merged(rel_overrides or {})


# Numeric settings: kind, least value, whether that value itself is allowed.
# Checked when a container's options are parsed, so a bad one is a usage error
# naming the setting and the layer it came from, not a failure at first use.
NUMERIC_SETTINGS: dict[str, tuple[type, float, bool]] = {
    "broker.prefetch": (int, 0, True),
    "broker.max_message_size": (int, 1, True),
    "broker.heartbeat": (int, 0, True),
    "broker.connect_attempts": (int, 1, True),
    "broker.retry_delay": (float, 0, True),
    "broker.handshake_timeout": (float, 0, False),
    "broker.restore_timeout": (float, 0, True),
    "broker.max_unconfirmed": (int, 1, True),
    "container.rpc_timeout": (float, 0, False),
    "container.conversation_timeout": (float, 0, False),
    "container.terminate_timeout": (float, 0, True),
    "pack.start_timeout": (float, 0, False),
    "pack.needs_timeout": (float, 0, True),
    "process.concurrency": (int, 0, True),
    "process.handler_timeout": (float, 0, True),
    "process.max_redeliveries": (int, 0, True),
    "agent.heartbeat": (float, 0, False),
    "agent.dead_after": (int, 1, True),
    "agent.suspect_max": (float, 0, False),
    "agent.ttl_dead": (float, 0, False),
    "agent.info_timeout": (float, 0, False),
    "logging.drop_interval": (float, 0, False),
    "logging.drop_top": (int, 1, True),
}
#: Numeric settings whose null means "work it out" (agent.suspect_max: 3·k·H).
NULLABLE_SETTINGS = frozenset({"agent.suspect_max"})


def check_settings(layers: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    """Check the numeric settings (L{NUMERIC_SETTINGS}) of merged C{layers}.

    @raise ConfigurationError: naming the setting, its value and its layer.
    """
    for key, (value, layer) in value_sources(layers).items():
        if key in NUMERIC_SETTINGS and not (value is None and key in NULLABLE_SETTINGS):
            number_setting(key, value, layer)


def number_setting(key: str, value: Any, layer: str | None = None) -> float:
    """C{value} of numeric setting C{key} (L{NUMERIC_SETTINGS}), as its kind.

    @raise ConfigurationError: naming the setting, its value and (if given) its layer.
    """
    kind, least, least_allowed = NUMERIC_SETTINGS[key]
    number = read_number(value, kind)
    if number is None or number < least or (number == least and not least_allowed):
        what = "a whole number" if kind is int else "a number of seconds"
        bound = f"{'>=' if least_allowed else '>'} {least:g}"
        where = f" (from {layer})" if layer else ""
        raise ConfigurationError(f"{key}: expected {what} {bound}, not {value!r}{where}")
    return kind(number)  # type: ignore[no-any-return]


def read_number(value: Any, kind: type) -> float | None:
    """C{value} as its users read it (C{int(...)} or C{float(...)}), or None if
    they cannot: not a number, not finite, or (for C{int}) not whole."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
        if kind is int:
            int(value)  # as read: "10" is whole, "10.0" is not
    except ValueError:
        return None
    if not math.isfinite(number) or (kind is int and not number.is_integer()):
        return None
    return number
