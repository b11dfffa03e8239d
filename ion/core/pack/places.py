"""Where app, release and config files are found: the user's directories first,
ion's own (shipped in the package as C{ion/res/...}) last.

A user's C{res/apps}, C{res/deploy} and C{res/config} (under C{pack.root},
default the working directory) come first, so a project can replace any of
ion's files; ion's C{ioncore.app}, C{hello.rel} and default C{ion.yml} are
found from any directory, with or without a checkout.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ion.core.config import Config

# The kinds of files ion ships, each in its own directory of ion/res.
APPS = "apps"
RELEASES = "deploy"
CONFIG = "config"


def package_dir(kind: str) -> Path:
    """ion's own C{res/<kind>} directory, inside the installed package."""
    # ion is installed as files (a wheel or a checkout), so its resources are paths.
    return Path(os.fspath(files("ion").joinpath("res", kind)))


def search_dirs(dirs: Sequence[str | os.PathLike[str]], root: Path, kind: str) -> list[Path]:
    """C{dirs} under C{root}, then ion's own C{res/<kind>} unless already among them."""
    out = [root / d for d in dirs]
    own = package_dir(kind)
    if own.is_dir() and own.resolve() not in [d.resolve() for d in out]:
        out.append(own)
    return out


# A FILE given to `twistd cc` by bare name: where it is looked up, by suffix.
_NAMED = {
    ".rel": ("pack.rel_path", "res/deploy", RELEASES),
    ".app": ("pack.app_path", "res/apps", APPS),
}


def find_named(name: str, config: Config) -> Path | None:
    """The file a bare C{NAME.rel} or C{NAME.app} (no directory part) stands for:
    the first in C{pack.rel_path} / C{pack.app_path} under C{pack.root}, then
    ion's own; None if there is none (or C{name} has a directory part)."""
    suffix = os.path.splitext(name)[1]
    if suffix not in _NAMED or os.sep in name or "/" in name:
        return None
    key, default, kind = _NAMED[suffix]
    dirs = config.get(key, [default])
    root = config.get("pack.root")
    base = Path(root) if root else Path.cwd()
    for directory in search_dirs([dirs] if isinstance(dirs, str) else dirs, base, kind):
        if (directory / name).is_file():
            return directory / name
    return None
