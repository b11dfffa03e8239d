"""The shell's charts of the message tap: msc() (mscgen text or an SVG file)
and trace() (text), on a real container making calls."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import pytest_twisted

from ion.core.cc.container import Container
from ion.core.cc.shell_api import ShellApi, Text, namespace
from ion.core.config import DEFAULTS, Config
from ion.core.exception import ProcessError, ReceivedApplicationError
from ion.core.observe.mscgen import parse_mscgen
from ion.services.hello import HelloService
from tests.helpers import wait_for

NS = {"s": "http://www.w3.org/2000/svg"}


async def two_calls(container: Container) -> tuple[ShellApi, str, str]:
    """A shell that called hello once well and once with an op it lacks; the
    shell's and hello's pids."""
    cc = ShellApi(container)
    hello = await container.spawn(HelloService)
    assert await wait_for(cc.rpc_send("hello", "hello", "you")) == {"value": "Hello there, you"}
    with pytest.raises(ReceivedApplicationError):
        await wait_for(cc.rpc_send("hello", "nope"))
    shell = await cc.shell_process()
    return cc, str(shell.id), str(hello.id)


@pytest_twisted.ensureDeferred
async def test_msc_is_the_mscgen_text_of_the_taps_last_messages(container: Container) -> None:
    cc, shell, hello = await two_calls(container)
    text = cc.msc()
    assert isinstance(text, Text) and repr(text) == str(text)
    chart = parse_mscgen(text)
    assert [(a["src"], a["dst"], a["kind"]) for a in chart.arcs] == [
        (shell, hello, "request"),
        (hello, shell, "reply"),
        (shell, hello, "request"),
        (hello, shell, "failure"),
    ]
    assert {e["name"]: e["label"] for e in chart.entities} == {shell: "shell", hello: "hello"}
    assert len(parse_mscgen(cc.msc(n=1)).arcs) == 1


@pytest_twisted.ensureDeferred
async def test_msc_filters_by_op_conversation_and_process(container: Container) -> None:
    cc, shell, hello = await two_calls(container)
    nope = parse_mscgen(cc.msc(op="nope")).arcs
    assert [a["label"] for a in nope] == ["nope"]
    assert container.tap is not None
    conv = container.tap.read().rows[-1]["conv_id"]
    assert [a["kind"] for a in parse_mscgen(cc.msc(conv=conv)).arcs] == ["request", "failure"]
    assert len(parse_mscgen(cc.msc(pid="hello")).arcs) == 4  # by name, as ps() shows it
    assert len(parse_mscgen(cc.msc(service="hello", n=2)).arcs) == 2
    assert parse_mscgen(cc.msc(pid="nobody.9@elsewhere")).arcs == []
    with pytest.raises(ProcessError, match="positive"):
        cc.msc(n=0)


@pytest_twisted.ensureDeferred
async def test_msc_with_a_file_writes_the_svg_and_says_where(
    container: Container, tmp_path: Path
) -> None:
    cc, _, _ = await two_calls(container)
    out = tmp_path / "calls.svg"
    said = cc.msc(file=str(out))
    assert said == f"wrote 4 messages (2 lanes) to {out}"
    root = ET.parse(out).getroot()
    assert len(root.findall(".//s:g[@class='msg']", NS)) == 4
    assert container.tap is not None and len(container.tap.read().rows) == 4


@pytest_twisted.ensureDeferred
async def test_trace_is_a_text_chart_of_the_last_messages(container: Container) -> None:
    cc, shell, hello = await two_calls(container)
    lines = cc.trace().splitlines()
    assert lines[0].split() == ["time", "hello", "shell"]
    assert len(lines) == 2 + 4 and "!! result ERROR" in lines[-1]
    assert len(cc.trace(n=2).splitlines()) == 2 + 2
    ns = namespace(cc)
    assert ns["trace"].__func__ is ShellApi.trace and ns["msc"].__func__ is ShellApi.msc


@pytest_twisted.ensureDeferred
async def test_with_the_tap_off_both_say_so(
    make_container: Callable[..., Awaitable[Container]], tmp_path: Path
) -> None:
    container = await make_container(config=Config(DEFAULTS).merged({"observer": {"tap": False}}))
    cc = ShellApi(container)
    assert container.tap is None
    never = tmp_path / "never.svg"
    for said in (cc.msc(), cc.msc(file=str(never)), cc.trace()):
        assert said == "the message tap is off (observer.tap: false)"
    assert not never.exists()
