"""Logging: text and JSON output, per-module levels, and credential redaction."""

from __future__ import annotations

import io
import json
import signal

import pytest
from twisted.internet.task import Clock
from twisted.logger import Logger, LogPublisher

from ion.core.config import DEFAULTS, Config
from ion.core.drops import Drops
from ion.core.exception import ConfigurationError
from ion.core.log import MAX_MESSAGE, install_observers, redact_text, redact_url
from ion.core.messaging.message import Message


def setup(logging: dict) -> tuple[LogPublisher, io.StringIO]:
    """A private publisher with the configured observer, and the stream it writes."""
    publisher, stream = LogPublisher(), io.StringIO()
    config = Config(DEFAULTS).merged({"logging": logging})
    install_observers(config, stream, publisher=publisher)
    return publisher, stream


def logger(publisher: LogPublisher, namespace: str) -> Logger:
    return Logger(namespace=namespace, observer=publisher)


def test_text_output() -> None:
    """Text lines carry time, namespace, level and the formatted message."""
    publisher, stream = setup({"format": "text"})
    logger(publisher, "ion.core.x").info("hello {who}", who="you")
    line = stream.getvalue()
    assert line.endswith(" [ion.core.x] INFO: hello you\n")
    assert line[:4].isdigit() and line.count("\n") == 1


def test_text_output_has_traceback() -> None:
    """A logged failure prints its traceback under the line."""
    publisher, stream = setup({"format": "text"})
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError:
        logger(publisher, "ion.core.x").failure("it broke")
    out = stream.getvalue()
    assert "CRITICAL: it broke\nTraceback" in out and "ZeroDivisionError: boom" in out


def test_json_output() -> None:
    """JSON output is one object per line with level, namespace, message and fields."""
    publisher, stream = setup({"format": "json"})
    log = logger(publisher, "ion.core.x")
    log.warn("call {op} failed", op="hello", n=3, obj=object())
    log.error("second")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "warn" and first["namespace"] == "ion.core.x"
    assert first["message"] == "call hello failed"
    assert first["op"] == "hello" and first["n"] == 3 and first["obj"].startswith("<object")
    assert "T" in first["time"]
    assert second["message"] == "second" and second["level"] == "error"


def test_json_output_has_traceback() -> None:
    """A failure logged in JSON carries its traceback as a field."""
    publisher, stream = setup({"format": "json"})
    try:
        raise ValueError("bad")
    except ValueError:
        logger(publisher, "ion.x").failure("oops")
    record = json.loads(stream.getvalue())
    assert "ValueError: bad" in record["traceback"]


def test_levels_follow_the_package_hierarchy() -> None:
    """A package's level covers its modules unless a deeper entry overrides it."""
    publisher, stream = setup(
        {
            "format": "json",
            "level": "warn",
            "levels": {"ion": "info", "ion.core": "debug", "ion.core.messaging": "error"},
        }
    )
    cases = [
        ("ion.services.hello", "debug", False),
        ("ion.services.hello", "info", True),
        ("ion.core.process.process", "debug", True),
        ("ion.core.messaging.broker", "warn", False),
        ("ion.core.messaging.broker", "error", True),
        ("ion.core.messaging", "error", True),
        ("twisted.internet", "info", False),
        ("twisted.internet", "warn", True),
        ("ionic", "info", False),
    ]
    for namespace, level, _ in cases:
        getattr(logger(publisher, namespace), level)("m")
    seen = [(r["namespace"], r["level"]) for r in map(json.loads, stream.getvalue().splitlines())]
    assert seen == [(ns, level) for ns, level, shown in cases if shown]


@pytest.mark.parametrize(
    "logging",
    [{"format": "xml"}, {"level": "loud"}, {"levels": {"ion": "verbose"}}, {"levels": ["ion"]}],
)
def test_bad_logging_config_is_a_clear_error(logging: dict) -> None:
    """An unknown format or level is a ConfigurationError naming the key."""
    with pytest.raises(ConfigurationError, match=r"logging\.(format|level)"):
        setup(logging)


def test_warning_is_an_alias() -> None:
    """'warning' and upper-case level names are accepted."""
    publisher, stream = setup({"levels": {"ion": "WARNING"}})
    logger(publisher, "ion.x").info("hidden")
    logger(publisher, "ion.x").warn("shown")
    assert "hidden" not in stream.getvalue() and "shown" in stream.getvalue()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("amqp://user:pass@host/", "amqp://user:***@host/"),
        (
            "amqp://guest:s3cr%40t@broker.example:5672/vhost",
            "amqp://guest:***@broker.example:5672/vhost",
        ),
        ("amqps://user@host/", "amqps://user@host/"),
        ("amqp://host:5672/", "amqp://host:5672/"),
        ("local", "local"),
        ("", ""),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    """Passwords in URLs are masked; URLs without one are unchanged."""
    assert redact_url(url) == shown


def test_redact_text() -> None:
    """Every URL password inside free text is masked."""
    text = "to amqp://a:p1@h1/ and http://b:p2/x@h2:80/ then done"
    assert redact_text(text) == "to amqp://a:***@h1/ and http://b:***@h2:80/ then done"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_logged_credentials_never_reach_the_output(fmt: str) -> None:
    """A URL with a password, or a password field, is masked in both formats."""
    publisher, stream = setup({"format": fmt})
    url = "amqp://guest:hunter2@localhost:5672/"
    logger(publisher, "ion.core.messaging").info("connecting to {url}", url=url, password="hunter2")
    out = stream.getvalue()
    assert "hunter2" not in out and "guest:***@localhost" in out


def test_install_uses_the_given_publisher_only() -> None:
    """install_observers adds to the publisher given and the observer can be removed."""
    publisher, stream = LogPublisher(), io.StringIO()
    observer = install_observers(Config(DEFAULTS), stream, publisher=publisher)
    logger(publisher, "ion.x").info("one")
    publisher.removeObserver(observer)
    logger(publisher, "ion.x").info("two")
    assert "one" in stream.getvalue() and "two" not in stream.getvalue()


def test_a_config_shown_masks_its_secrets() -> None:
    """cc.config at the shell (its repr) shows no password, in a key or a URL."""
    from ion.core.config import Config

    shown = repr(
        Config({"broker": {"url": "amqp://u:s3cret@h/", "password": "pw", "token": ["t"]}})
    )
    assert "s3cret" not in shown and "pw" not in shown and "'t'" not in shown
    assert "amqp://u:***@h/" in shown and "'password': '***'" in shown


def test_a_log_file_rotates_as_twistds_own(tmp_path) -> None:
    """-l FILE (or a daemon's twistd.log) is a LogFile rotated past 1 MB, as twistd's."""
    from twisted.python.logfile import LogFile

    from ion.core.log import twistd_log_file

    before = signal.getsignal(signal.SIGUSR1)
    out = twistd_log_file(str(tmp_path / "cc.log"), nodaemon=True)
    signal.signal(signal.SIGUSR1, before)  # SIGUSR1 rotation is test_daemon's
    try:
        assert isinstance(out, LogFile) and out.rotateLength == 1_000_000
        out.write("x" * 1_000_001)
        out.write("next\n")  # written past the limit: rotated first
        assert (tmp_path / "cc.log.1").exists()
        assert (tmp_path / "cc.log").read_text() == "next\n"
    finally:
        out.close()


FORGED = "x\n2026-01-01 FAKE LOG LINE\r\x1b[2J\u202e\x9b"


def forged_message() -> Message:
    """A message whose headers carry a forged log line and terminal escapes."""
    return Message({"sender": FORGED, "receiver": "svc", "op": FORGED, "conv-id": FORGED,
                    "protocol": "rpc", "performative": FORGED})  # fmt: skip


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_header_cannot_forge_a_line(fmt: str) -> None:
    """Header text with a newline and a fake timestamp, a CR, ESC, a C1 control and a
    bidi override, logged as a message repr, a plain field and a dropped message,
    gives one line per event, with none of those characters raw."""
    publisher, stream = setup({"format": fmt})
    log = logger(publisher, "ion.core.x")
    log.warn("{msg!r} dropped", msg=forged_message())
    log.warn("from {sender}", sender=FORGED)
    Drops(Clock(), logger=log).dropped("bad", sender=FORGED, where=FORGED, detail=FORGED)
    out = stream.getvalue()
    lines = out.splitlines()
    assert len(lines) == 3 and out.count("\n") == 3
    assert not any(line.startswith("2026-01-01") for line in lines)
    for char in "\r\x1b\u202e\x9b":
        assert char not in out
    if fmt == "json":
        messages = [json.loads(line)["message"] for line in lines]
    else:
        messages = lines
    for message in messages:
        assert "\n" not in message and "\x1b" not in message
        assert "\\n2026-01-01 FAKE LOG LINE" in message


def test_a_traceback_keeps_its_lines_but_not_terminal_escapes() -> None:
    publisher, stream = setup({"format": "text"})
    try:
        raise ValueError("evil \x1b[2J text")
    except ValueError:
        logger(publisher, "ion.core.x").failure("it broke \x1b]0;title\x07")
    out = stream.getvalue()
    assert "\x1b" not in out and "\x07" not in out
    assert "it broke \\x1b]0;title\\x07\nTraceback" in out


def test_a_long_message_is_cut() -> None:
    publisher, stream = setup({"format": "text"})
    logger(publisher, "ion.core.x").info("{big}", big="y" * (MAX_MESSAGE * 3))
    line = stream.getvalue()
    assert len(line) < MAX_MESSAGE + 200 and f"{MAX_MESSAGE * 2} more characters" in line
