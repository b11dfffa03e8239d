"""Find app files and order apps so that every app starts after the apps it needs.

Everything here runs before anything starts: a missing app (all of them, each
with who needs it), a cycle (named in full), a file whose C{name} is not the
name it was asked for, or a version that does not match is one
L{DependencyError}, and nothing is started.

Versions: a requested version matches when it equals the app's version, or
when its dot-separated components are the leading components of the app's
version (C{"1"} and C{"1.2"} match C{"1.2.3"}; C{"1.2"} does not match
C{"1.20"}). No version requested matches any.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from ion.core.config import Config
from ion.core.exception import AppFileError, DependencyError, MissingAppError
from ion.core.pack.appfile import (
    AppDefinition,
    AppRef,
    ReleaseDefinition,
    ReleaseEntry,
    load_app,
    processapp_definition,
)
from ion.core.pack.fileformat import field_line
from ion.core.pack.places import APPS, search_dirs

AppLoader = Callable[[str], AppDefinition]


def version_matches(wanted: str | None, actual: str) -> bool:
    """Whether an app of version C{actual} satisfies a request for C{wanted}."""
    if not wanted:
        return True
    want, have = wanted.split("."), actual.split(".")
    return have[: len(want)] == want


def find_file(name: str, suffix: str, dirs: Sequence[Path]) -> Path:
    """The first C{<dir>/<name><suffix>} that exists; L{MissingAppError} naming the dirs."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise MissingAppError(f"{name!r} is not an app or release name")
    for directory in dirs:
        path = directory / f"{name}{suffix}"
        if path.is_file():
            return path
    searched = ", ".join(str(d) for d in dirs) or "no directories"
    raise MissingAppError(f"no {name}{suffix} in {searched}")


def is_path(target: str | os.PathLike[str], suffix: str = ".app") -> bool:
    """Whether C{target} names a file rather than an app or release."""
    text = os.fspath(target)
    return not isinstance(target, str) or text.endswith(suffix) or os.sep in text


def load_app_file(path: Path) -> AppDefinition:
    """Load an app given by path; its C{name} must be the file's name."""
    definition = load_app(path)
    if definition.name != path.stem:
        raise AppFileError(
            str(path),
            f"name {definition.name!r} does not match the file name {path.name!r}",
            field="name",
            line=field_line(path, "name"),
        )
    return definition


class FileAppLoader:
    """Loads C{<name>.app} from a search path, first directory first; caches definitions."""

    def __init__(
        self, dirs: Sequence[str | os.PathLike[str]], root: str | os.PathLike[str] | None = None
    ) -> None:
        base = Path(root) if root is not None else Path.cwd()
        self.dirs: tuple[Path, ...] = tuple(base / d for d in dirs)
        self._cache: dict[str, AppDefinition] = {}

    @classmethod
    def from_config(
        cls, config: Config, root: str | os.PathLike[str] | None = None
    ) -> FileAppLoader:
        """A loader searching C{pack.app_path} (a list, or one directory) under C{root},
        then ion's own apps."""
        dirs = config.get("pack.app_path", ["res/apps"])
        base = Path(root) if root is not None else Path.cwd()
        return cls(search_dirs([dirs] if isinstance(dirs, str) else list(dirs), base, APPS))

    def find(self, name: str) -> Path:
        """The file that defines app C{name}."""
        return find_file(name, ".app", self.dirs)

    def __call__(self, name: str) -> AppDefinition:
        if name not in self._cache:
            self._cache[name] = load_app(self.find(name))
        return self._cache[name]


def _where(app: AppDefinition) -> str:
    return f" ({app.path})" if app.path is not None else ""


class _Resolver:
    """Depth-first, deps in declared order: the same input gives the same order."""

    def __init__(self, load: AppLoader) -> None:
        self.load = load
        self.loaded: dict[str, AppDefinition | None] = {}
        self.done: set[str] = set()
        self.missing: dict[str, tuple[list[str], str]] = {}
        self.stack: list[str] = []

    def lookup(self, ref: AppRef, needed_by: str) -> AppDefinition | None:
        """The definition of C{ref}, name and version checked; None (recorded) if missing."""
        if ref.name not in self.loaded:
            try:
                app = self.load(ref.name)
            except (MissingAppError, LookupError, FileNotFoundError) as exc:
                self.loaded[ref.name] = None
                # A KeyError's text is just the name: say something useful instead.
                reason = "no definition" if isinstance(exc, KeyError) else str(exc)
                self.missing[ref.name] = ([], reason)
            else:
                if app.name != ref.name:
                    raise DependencyError(
                        f"app {ref.name!r} (needed by {needed_by}) is defined{_where(app)} "
                        f"with name {app.name!r}; a file's name must be the name it is asked for"
                    )
                self.loaded[ref.name] = app
        app = self.loaded[ref.name]
        if app is None:
            self.missing[ref.name][0].append(needed_by)
            return None
        if not version_matches(ref.version, app.version):
            raise DependencyError(
                f"{needed_by} needs app {ref.name!r} version {ref.version!r}, "
                f"but it is version {app.version!r}{_where(app)}"
            )
        return app

    def add(self, ref: AppRef, needed_by: str) -> list[AppDefinition]:
        """Apps newly put in order by asking for C{ref}: its missing deps, then it."""
        if ref.name in self.stack:
            cycle = [*self.stack[self.stack.index(ref.name) :], ref.name]
            raise DependencyError(f"dependency cycle: {' -> '.join(cycle)}")
        app = self.lookup(ref, needed_by)
        if app is None or ref.name in self.done:
            return []
        order: list[AppDefinition] = []
        self.stack.append(ref.name)
        for dep in app.applications:
            order += self.add(dep, f"app {ref.name!r}{_where(app)}")
        self.stack.pop()
        self.done.add(ref.name)
        order.append(app)
        return order

    def check(self) -> None:
        """Raise one L{MissingAppError} listing every app not found, if any."""
        if self.missing:
            lines = [
                f"app {name!r} not found ({reason}); needed by {', '.join(by)}"
                for name, (by, reason) in self.missing.items()
            ]
            raise MissingAppError("; ".join(lines))


def _ref(item: str | AppRef | tuple[str, str | None]) -> AppRef:
    return AppRef(item) if isinstance(item, str) else AppRef(*item)


def resolve(
    requested: Iterable[str | AppRef | tuple[str, str | None]],
    load: AppLoader,
    requester: str = "the request",
) -> list[AppDefinition]:
    """The start order of C{requested} apps and everything they need, each once.

    Dependencies come before the apps that need them, in the order they are
    declared; requested apps in the order given. C{load(name)} returns a
    definition or raises L{MissingAppError} / C{LookupError} /
    C{FileNotFoundError} when there is none.
    """
    resolver = _Resolver(load)
    order: list[AppDefinition] = []
    for item in requested:
        order += resolver.add(_ref(item), requester)
    resolver.check()
    return order


class StartStep(NamedTuple):
    """One app to start, with the release entry that configures it (None for a dependency)."""

    app: AppDefinition
    entry: ReleaseEntry | None


def plan_release(release: ReleaseDefinition, load: AppLoader) -> list[StartStep]:
    """The start order of a release: its entries in list order, each after its deps.

    An app listed twice is an error unless the later entry has C{mult: true}
    (then it is started again at its place in the list). Entries with
    C{processapp} need no C{.app} file.
    """
    where = f"release {release.name!r}" + (f" ({release.path})" if release.path else "")
    synthesized: dict[str, AppDefinition] = {}
    first: dict[str, ReleaseEntry] = {}
    for entry in release.apps:
        if entry.name in first and not entry.mult:
            line = f" line {entry.line}" if entry.line else ""
            raise DependencyError(
                f"{where}{line}: app {entry.name!r} is listed twice; "
                "set mult: true to start it again"
            )
        first.setdefault(entry.name, entry)
        if entry.processapp is not None and entry.name not in synthesized:
            synthesized[entry.name] = processapp_definition(entry)

    def release_load(name: str) -> AppDefinition:
        return synthesized[name] if name in synthesized else load(name)

    resolver = _Resolver(release_load)
    steps: list[StartStep] = []
    for entry in release.apps:
        ref = AppRef(entry.name, entry.version)
        if first[entry.name] is entry:
            for app in resolver.add(ref, where):
                steps.append(StartStep(app, first.get(app.name)))
        else:
            app = resolver.lookup(ref, where)
            if app is not None:
                own = processapp_definition(entry) if entry.processapp else app
                steps.append(StartStep(own, entry))
    resolver.check()
    return steps
