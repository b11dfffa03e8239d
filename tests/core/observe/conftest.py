"""Fixtures of the observer's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.core.cc.agent_system import System


@pytest.fixture
def system() -> Iterator[System]:
    """Containers on one embedded broker and a fake clock (L{System}), stopped after."""
    s = System()
    yield s
    s.stop_all()
