"""A generated token's file: mode 0600, its directory made, errors naming the setting."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ion.core.exception import StartupError
from ion.core.security.token_file import remove_token, write_token


def test_written_0600_in_a_directory_made_for_it_and_removed(tmp_path: Path) -> None:
    path = tmp_path / "new" / "gateway.token"
    write_token(str(path), "t0k3n", "gateway.token_file")
    assert path.read_text() == "t0k3n\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    remove_token(str(path))
    remove_token(str(path))  # (gone already: nothing to do)
    assert not path.exists()


def test_a_planted_link_is_replaced_not_written_through(tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_text("keep")
    link = tmp_path / "web.token"
    os.symlink(target, link)
    write_token(str(link), "t", "web.token_file")
    assert target.read_text() == "keep" and not link.is_symlink()


def test_an_unwritable_place_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StartupError, match=r"^web.token_file .*/file/x: "):
        write_token(str(blocker / "x"), "t", "web.token_file")
