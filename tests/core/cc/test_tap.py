"""twistd cc's options, checked before anything starts, and the files the
runner reads and writes: bad input is one usage error, and nothing that is not
ion's own is written over or deleted."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.python import usage

from ion.core.cc.runner import ScriptError, read_ready_file, run_script, write_ready_file
from ion.core.cc.tap import Options


def parsed(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["-s", "bad name"], "invalid sysname 'bad name'"),
        (["-a", "sysname=123"], "invalid sysname 123"),
        (["--container-id", "a b"], "invalid --container-id 'a b'"),
        (["--log-format", "xml"], "logging.format: 'xml' is not one of text, json"),
        (["-a", "logging.level=foo"], "logging.level: 'foo' is not a log level"),
        (["-a", "pack.app_path=5"], "pack.app_path: expected a directory or a list of them"),
        (["--ready-file", "/no/such/dir/ready"], "no directory '/no/such/dir'"),
    ],
)
def test_what_the_container_would_refuse_is_a_usage_error(argv: list[str], why: str) -> None:
    with pytest.raises(usage.UsageError, match=why):
        parsed(*argv)


def test_repeated_a_options_all_count_the_later_winning() -> None:
    options = parsed("-a", "sysname=first", "-a", "container.rpc_timeout=5", "-a", "sysname=last")
    assert options.config.get("sysname") == "last"
    assert options.config.get("container.rpc_timeout") == 5


def test_a_ready_file_path_holding_something_else_is_refused(tmp_path: Path) -> None:
    """The path of a release (say, given twice by mistake) or a directory is not
    taken over; a ready file an earlier run left is."""
    release = tmp_path / "keep.rel"
    release.write_text("type: release\nname: keep\napps: []\n")
    for path in (release, tmp_path):
        with pytest.raises(usage.UsageError, match="exists and is not a ready file"):
            parsed("--ready-file", str(path))
    assert release.read_text().startswith("type: release")
    earlier = tmp_path / "ready"
    earlier.write_text(json.dumps({"pid": 1, "container": "c", "sysname": "s", "apps": []}))
    assert parsed("--ready-file", str(earlier))["ready-file"] == str(earlier)


def test_the_ready_file_is_written_as_a_new_file_never_through_a_planted_link(
    tmp_path: Path,
) -> None:
    """A link planted where the temporary file used to be (a predictable name)
    is neither followed nor touched."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    ready = tmp_path / "ready"
    for pid in range(os.getpid() - 2, os.getpid() + 3):
        os.symlink(victim, f"{ready}.{pid}.tmp")

    class Stub:
        id, sysname, web = "c1", "s1", None

        def apps(self) -> list[Any]:
            return []

    write_ready_file(str(ready), Stub())  # type: ignore[arg-type]
    assert victim.read_text() == "precious\n"
    assert read_ready_file(str(ready)) == {
        "pid": os.getpid(),
        "container": "c1",
        "sysname": "s1",
        "apps": [],
        "web": None,
    }
    assert not ready.is_symlink() and oct(ready.stat().st_mode & 0o777) == "0o644"
    assert not list(tmp_path.glob(".ready.*"))  # no temporary file left


@pytest.mark.parametrize(
    ("name", "content", "why"),
    [
        ("exits.py", "import sys\nsys.exit(3)\n", r"exits.py:2: boot script failed: SystemExit: 3"),
        ("latin1.py", b"# \xe9\n", "cannot read the boot script"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_a_boot_script_that_exits_or_cannot_be_read_is_a_script_error(
    tmp_path: Path, container: Any, name: str, content: Any, why: str
) -> None:
    script = tmp_path / name
    if isinstance(content, bytes):
        script.write_bytes(content)
    else:
        script.write_text(content)
    with pytest.raises(ScriptError, match=why):
        await run_script(script, container)
    with pytest.raises(ScriptError, match="cannot read the boot script"):
        await run_script(tmp_path, container)  # a directory


def test_http_sets_gateway_http_and_starts_the_gateway_app() -> None:
    """--http HOST:PORT sets gateway.http and adds gateway.app after the FILEs."""
    options = parsed("--http", "127.0.0.1:0", "hello.rel")
    assert options.config.get("gateway.http") == "127.0.0.1:0"
    assert [Path(f).name for f in options.files] == ["hello.rel", "gateway.app"]
    assert Path(options.files[-1]).is_file()


def test_http_does_not_start_the_gateway_twice() -> None:
    """A release that already starts the gateway gets no second one."""
    options = parsed("--http", "8070", "gateway.rel")
    assert [Path(f).name for f in options.files] == ["gateway.rel"]
    assert options.config.get("gateway.http") == "8070"


def test_without_http_no_gateway() -> None:
    """Without --http nothing is added."""
    assert [Path(f).name for f in parsed("hello.rel").files] == ["hello.rel"]


def test_bad_http_is_a_usage_error() -> None:
    """An --http that is not PORT or HOST:PORT is a usage error naming it."""
    with pytest.raises(usage.UsageError, match=r"gateway.http \(--http\)"):
        parsed("--http", "example.org:80")
