"""What the app manager records about an app it starts: from plan to stop.

L{RunningApp} is the manager's own record; L{AppInfo} is what it lists;
L{AppStartError} is what a failing C{start} raises.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from ion.core.config import Config
from ion.core.exception import StartupError
from ion.core.pack.appfile import AppDefinition
from ion.core.pack.fileformat import field_line


class AppStartError(StartupError):
    """An app's C{start} failed; names the file and field that define the app.

    @ivar path: the file; @ivar field: the field (C{mod}, or a release entry);
    @ivar line: its 1-based line when known.
    """

    def __init__(
        self, path: str, reason: str, field: str | None = None, line: int | None = None
    ) -> None:
        self.path, self.field, self.line, self.reason = path, field, line, reason
        where = path if line is None else f"{path}:{line}"
        what = f" field {field!r}:" if field else ""
        super().__init__(f"{where}:{what} {reason}")


class AppInfo(NamedTuple):
    """One running app as L{AppManager.apps} lists it."""

    name: str
    version: str
    state: str  # running | stopping
    release: str | None


@dataclasses.dataclass
class RunningApp:
    """An app from planning to stop: what it starts with, and what C{start} returned."""

    definition: AppDefinition
    config: Config  # the app's own view
    kwargs: dict[str, Any]
    entry_where: tuple[str, str, int | None] | None = None  # a release entry: file, field, line
    release: str | None = None
    module: Any = None  # ModuleType, set once imported and checked
    state: Any = None
    status: str = "planned"  # planned | running | stopping | stopped

    @property
    def name(self) -> str:
        return self.definition.name

    def where(self) -> tuple[str, str, int | None]:
        """The file, field and line to name in an error about this app (reads lines lazily)."""
        app = self.definition
        if app.path is not None:
            return (str(app.path), "mod", field_line(app.path, "mod"))
        return self.entry_where or (f"app {app.name!r}", "mod", None)

    def info(self) -> AppInfo:
        return AppInfo(self.name, self.definition.version, self.status, self.release)
