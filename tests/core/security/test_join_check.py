"""A container with signing on does not join a system whose messages it cannot
verify: its boot fails with a StartupError naming the peer and why."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from ion.core.cc.container import Container
from ion.core.config import Config
from ion.core.exception import StartupError
from ion.core.security.keys import new_key_line
from tests.core.security.conftest import config

System = Callable[..., Awaitable[Container]]
FAST = {"heartbeat": 0.1}  # peers beat every 0.1 s; the check listens up to 2 s


def peer(key_file: Path | None) -> Config:
    return config(key_file, agent=FAST)


def joining(key_file: Path) -> Config:
    return config(key_file, agent=FAST, security={"join_check": 2.0})


def other_keys(tmp_path: Path, kid: str) -> Path:
    path = tmp_path / f"other-{kid}.key"
    path.write_text(new_key_line(kid) + "\n")
    return path


async def refused(system: System, cfg: Config) -> str:
    container = await system(cfg, start=False)
    with pytest.raises(StartupError) as info:
        await container.start()
    assert container.apps() == []  # no app started
    return str(info.value)


@pytest_twisted.ensureDeferred
async def test_signing_container_refuses_an_unsigned_system(system: System, key_file: Path) -> None:
    await system(peer(None))
    text = await refused(system, joining(key_file))
    assert "container sec2 will not join system sec" in text
    assert "container 'sec1' sends messages it cannot verify (unsigned)" in text


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize(("kid", "why"), [("k2", "bad signature"), ("k9", "unknown key id")])
async def test_signing_container_refuses_a_system_signed_with_other_keys(
    system: System, key_file: Path, tmp_path: Path, kid: str, why: str
) -> None:
    await system(peer(other_keys(tmp_path, kid)))
    text = await refused(system, joining(key_file))
    assert f"container 'sec1' sends messages it cannot verify ({why})" in text


@pytest_twisted.ensureDeferred
async def test_signing_container_joins_a_system_with_its_keys(
    system: System, key_file: Path
) -> None:
    first = await system(peer(key_file))
    second = await system(joining(key_file))
    signer: Any = second.exchange.signer
    assert signer.refused == {}
    # It heard the first container's heartbeats while it checked, and verified them.
    assert first.id in second.agent.membership.peers  # type: ignore[union-attr]


@pytest_twisted.ensureDeferred
async def test_first_signing_container_of_a_system_starts(system: System, key_file: Path) -> None:
    container = await system(config(key_file, security={"join_check": 0.2}))
    assert container.exchange.signer is not None and container.agent is not None
