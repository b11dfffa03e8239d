"""The system key ring: from a key file or the environment, never the command line."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest
from twisted.python import usage

from ion.core.cc.container import Container
from ion.core.cc.tap import Options
from ion.core.config import DEFAULTS, Config, merge
from ion.core.exception import ConfigurationError
from ion.core.security.keys import ENV_KEY, ENV_PREVIOUS, load_ring, new_key_line, read_key_file


def signing(**security: object) -> Config:
    return Config(merge(DEFAULTS, {"security": {"signing": True, **security}}))


def line(kid: str, n: int = 32) -> str:
    return f"{kid} {base64.b64encode(bytes(range(n))).decode()}"


def test_signing_off_needs_no_key() -> None:
    assert load_ring(Config(DEFAULTS), environ={}) is None


def test_key_file_current_then_previous(tmp_path: Path) -> None:
    path = tmp_path / "ion.key"
    path.write_text(f"# rotated 2026-12-07\n{line('k2')}\n\n{line('k1')}\n")
    ring = load_ring(signing(key_file=str(path)), environ={})
    assert ring is not None and ring.kids == ["k2", "k1"]
    assert ring.get("k1") is ring.previous and ring.get("k0") is None


def test_environment_keys() -> None:
    env = {ENV_KEY: line("k2"), ENV_PREVIOUS: line("k1")}
    ring = load_ring(signing(), environ=env)
    assert ring is not None and ring.kids == ["k2", "k1"]


def test_missing_key_file_names_setting_and_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.key"
    with pytest.raises(ConfigurationError, match=f"security.key_file {missing}: No such file"):
        load_ring(signing(key_file=str(missing)), environ={ENV_KEY: line("k")})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no key in it"),
        (line("k1", 16), "k1.* is 16 bytes; a key needs at least 32"),
        ("k1 not*base64", "not base64"),
        ("justonefield", "expected '<kid> <base64 key>'"),
        (f"{line('a')}\n{line('b')}\n{line('c')}", "at most two keys"),
        (f"{line('a')}\n{line('a')}", "share id 'a'"),
    ],
)
def test_bad_key_file_refused_clearly(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "ion.key"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=f"security.key_file {path}.*{problem}"):
        read_key_file(str(path))


def test_no_key_at_all_says_how_to_make_one() -> None:
    with pytest.raises(ConfigurationError, match="python -m ion.core.security.keys new"):
        load_ring(signing(), environ={})


def test_key_text_never_in_the_error(tmp_path: Path) -> None:
    secret = base64.b64encode(b"s" * 16).decode()
    path = tmp_path / "ion.key"
    path.write_text(f"k1 {secret}")
    with pytest.raises(ConfigurationError) as info:
        read_key_file(str(path))
    assert secret not in str(info.value)


def test_container_refuses_to_boot_without_its_key(tmp_path: Path) -> None:
    missing = tmp_path / "ion.key"
    with pytest.raises(ConfigurationError, match=f"security.key_file {missing}"):
        Container(config=signing(key_file=str(missing)), container_id="nokey")


def test_twistd_reports_bad_key_file_as_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "ion.key"
    with pytest.raises(usage.UsageError, match=f"security.key_file {missing}: No such file"):
        Options().parseOptions(["-a", f"security.signing=true,security.key_file={missing}"])


def test_new_key_command(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ion.core.security.keys", "new", "k7"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    path = tmp_path / "ion.key"
    path.write_text(out)
    ring = read_key_file(str(path))
    assert ring.kids == ["k7"] and len(ring.current.secret) == 32
    assert new_key_line() != new_key_line()  # random
