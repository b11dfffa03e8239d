"""Logging through C{twisted.logger}: readable text or JSON lines, levels per module.

Modules log with C{log = twisted.logger.Logger()} (its namespace is the
module's name). What reaches the output is set by configuration:

    logging:
      format: text          # or json: one JSON object per line
      level: info           # namespaces not listed in levels (twisted, ...)
      levels: {ion: info, ion.core.messaging: warn}

A package's level applies to its modules unless they have their own
(C{ion.core: debug} covers C{ion.core.messaging.broker}). Both formats mask
passwords in URLs (L{redact_text}); log C{redact_url(url)}, not the URL.

Messages carry text from other systems' messages (headers, error details), so
both formats escape control characters in them (L{escape_text}): a newline,
a terminal escape or a bidi override cannot forge a line or repaint a terminal.
A message is cut at L{MAX_MESSAGE} characters.
"""

from __future__ import annotations

import json
import re
import signal
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

from constantly import NamedConstant
from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    ILogObserver,
    LogEvent,
    LogLevel,
    LogLevelFilterPredicate,
    LogPublisher,
    eventAsText,
    formatEvent,
    globalLogPublisher,
)
from twisted.python.logfile import LogFile

from ion.core.config import Config
from ion.core.exception import ConfigurationError

LEVELS: dict[str, NamedConstant] = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "warning": LogLevel.warn,
    "error": LogLevel.error,
    "critical": LogLevel.critical,
}
FORMATS = ("text", "json")
MASK = "***"
#: Characters past this in one log message are cut (the rest is counted).
MAX_MESSAGE = 8192

# C0 and C1 controls (newline, CR, ESC...), DEL, zero-width and direction marks,
# line and paragraph separators, bidi embeddings, overrides and isolates, BOM.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_UNSAFE_BUT_NEWLINE = re.compile(
    r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]"
)

# scheme://user:password@ -- the password is what goes.
_URL_CREDENTIALS = re.compile(r"(?P<head>\b[A-Za-z][\w+.-]*://[^:/@\s]*:)[^@\s]*@")
_SECRET_KEYS = re.compile(r"pass|secret|token|credential", re.IGNORECASE)
# Keys Twisted (and its legacy bridge) put in events; not user fields.
_EVENT_KEYS = frozenset({"message", "isError", "system", "time", "format", "why", "failure"})


def redact_url(url: str) -> str:
    """C{url} with its password masked: C{amqp://guest:***@host/}; others unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if "@" not in parts.netloc:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    if ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


def shown_url(url: str) -> str:
    """C{url} fit for a message: whatever stands before its last C{@} (credentials,
    maybe mangled) is masked, the scheme kept."""
    if "@" not in url:
        return url
    scheme, sep, _ = url.partition("://")
    return f"{scheme + sep if sep else ''}{MASK}@{url.rpartition('@')[2]}"


def redact_text(text: str) -> str:
    """C{text} with the password of every C{scheme://user:password@} in it masked."""
    return _URL_CREDENTIALS.sub(lambda m: f"{m.group('head')}{MASK}@", text)


_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_text(text: str, limit: int | None = MAX_MESSAGE) -> str:
    """C{text} fit for one log line: control characters (newline, CR, ESC, C1),
    bidi overrides and invisible marks written as C{\\xNN}/C{\\uNNNN}, and
    cut after C{limit} characters (None: not cut)."""
    if limit is not None and len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit} more characters)"
    return _UNSAFE.sub(_escaped, text)


def _escape_traceback(text: str) -> str:
    # A traceback keeps its lines; what it quotes cannot add terminal escapes.
    return _UNSAFE_BUT_NEWLINE.sub(_escaped, text)


def parse_level(name: Any, where: str = "logging.level") -> NamedConstant:
    """The L{LogLevel} named C{name} (debug, info, warn/warning, error, critical)."""
    level = LEVELS.get(str(name).strip().lower()) if isinstance(name, str) else None
    if level is None:
        raise ConfigurationError(
            f"{where}: {name!r} is not a log level (one of {', '.join(LEVELS)})"
        )
    return level


def _as_config(config: Config | Mapping[str, Any]) -> Config:
    return config if isinstance(config, Config) else Config(config)


def level_predicate(config: Config | Mapping[str, Any]) -> LogLevelFilterPredicate:
    """A filter predicate for C{logging.level} and the per-namespace C{logging.levels}."""
    cfg = _as_config(config)
    predicate = LogLevelFilterPredicate(parse_level(cfg.get("logging.level", "info")))
    levels = cfg.get("logging.levels", {}) or {}
    if not isinstance(levels, Mapping):
        raise ConfigurationError(f"logging.levels: must be a mapping, not {levels!r}")
    for namespace, name in levels.items():
        level = parse_level(name, f"logging.levels.{namespace}")
        predicate.setLogLevelForNamespace(str(namespace), level)
    return predicate


def _timestamp(event: LogEvent) -> str:
    when = event.get("log_time")
    if when is None:
        return "-"
    return datetime.fromtimestamp(when).astimezone().isoformat(timespec="milliseconds")


def _level_name(event: LogEvent) -> str:
    # LogLevel's members are NamedConstants, not LogLevel instances.
    return getattr(event.get("log_level"), "name", "info")


def format_text(event: LogEvent) -> str:
    """One event as C{time [namespace] LEVEL: message}, traceback after it;
    the message is one line (L{escape_text})."""
    text = escape_text(
        eventAsText(event, includeTraceback=False, includeTimestamp=False, includeSystem=False)
    )
    failure = event.get("log_failure")
    if failure is not None:
        text = f"{text}\n{_escape_traceback(_traceback(failure))}"
    namespace = event.get("log_namespace", "-")
    line = f"{_timestamp(event)} [{namespace}] {_level_name(event).upper()}: {text}"
    return redact_text(line) + "\n"


def _traceback(failure: Any) -> str:
    try:
        return str(failure.getTraceback())
    except BaseException as e:  # as twisted.logger does: a log line must not fail
        return f"(UNABLE TO OBTAIN TRACEBACK FROM EVENT): {e}"


def is_secret_key(key: Any) -> bool:
    """Whether a setting named C{key} holds a secret (a password, token...)."""
    return bool(_SECRET_KEYS.search(str(key)))


def redact_mapping(data: Any) -> Any:
    """C{data} with the values of secret keys masked and URL passwords redacted, nested."""
    if isinstance(data, Mapping):
        return {k: MASK if is_secret_key(k) else redact_mapping(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return type(data)(redact_mapping(v) for v in data)
    return redact_text(data) if isinstance(data, str) else data


def _jsonable(key: str, value: Any) -> Any:
    if is_secret_key(key):
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return redact_text(repr(value))
    return json.loads(redact_text(json.dumps(value)))


def format_json(event: LogEvent) -> str:
    """One event as one JSON object: time, level, namespace, message, traceback, fields."""
    record: dict[str, Any] = {
        "time": _timestamp(event),
        "level": _level_name(event),
        "namespace": event.get("log_namespace", ""),
        "message": redact_text(escape_text(formatEvent(event))),
    }
    failure = event.get("log_failure")
    if failure is not None:
        record["traceback"] = redact_text(_escape_traceback(_traceback(failure)))
    for key, value in event.items():
        if key.startswith("log_") or key in _EVENT_KEYS:
            continue
        name = key if key not in record else f"field.{key}"
        record[name] = _jsonable(key, value)
    return json.dumps(record, default=repr) + "\n"


def make_observer(config: Config | Mapping[str, Any], stream: IO[str]) -> FilteringLogObserver:
    """An observer writing to C{stream} in C{logging.format}, filtered by the levels.

    It touches no global state: add it to any L{LogPublisher}.
    """
    cfg = _as_config(config)
    fmt = cfg.get("logging.format", "text")
    if fmt not in FORMATS:
        raise ConfigurationError(f"logging.format: {fmt!r} is not one of {', '.join(FORMATS)}")
    formatter = format_json if fmt == "json" else format_text
    return FilteringLogObserver(FileLogObserver(stream, formatter), [level_predicate(cfg)])


def install_observers(
    config: Config | Mapping[str, Any],
    stream: IO[str],
    publisher: LogPublisher | None = None,
) -> ILogObserver:
    """Add the configured observer to C{publisher} (default: the global one); return it.

    Tests pass their own C{LogPublisher()}. Under twistd, which installs its own
    observer, prefer C{application.setComponent(ILogObserver, make_observer(...))}
    so lines are not written twice. Remove with C{publisher.removeObserver(obs)}.
    """
    observer = make_observer(config, stream)
    (globalLogPublisher if publisher is None else publisher).addObserver(observer)
    return observer


def twistd_log_file(logfile: str | None, nodaemon: bool) -> IO[str]:
    """Where twistd sends a plugin's log, opened: C{-l FILE} (C{--logfile}), else
    stdout in the foreground (C{-n}) and C{twistd.log} for a daemon.

    A file is a L{LogFile}, rotated as twistd rotates its own: past 1 MB, and
    on SIGUSR1 (unless SIGUSR1 already has a handler).
    """
    if logfile == "-":
        if not nodaemon:
            sys.exit("Daemons cannot log to stdout, exiting!")  # twistd's own words
        return sys.stdout
    if nodaemon and not logfile:
        return sys.stdout
    out = LogFile.fromFullPath(logfile or "twistd.log")
    if not signal.getsignal(signal.SIGUSR1):

        def rotate(_signum: int, _frame: Any) -> None:
            from twisted.internet import reactor

            reactor.callFromThread(out.rotate)

        signal.signal(signal.SIGUSR1, rotate)
    return out  # type: ignore[return-value]
