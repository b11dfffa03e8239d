"""What the app manager records about an app it starts: from plan to stop.

L{RunningApp} is the manager's own record; L{AppInfo} is what it lists;
L{AppStartError} is what a failing C{start} raises; L{load_module} imports and
checks an app's module before anything starts; L{settle} waits for its C{start}
or C{stop}, at most C{pack.start_timeout} seconds (L{start_timeout}).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from types import ModuleType
from typing import Any, NamedTuple

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from ion.core.config import DEFAULTS, Config, read_number
from ion.core.exception import AppFileError, IonError, StartupError
from ion.core.pack.appfile import AppDefinition
from ion.core.pack.fileformat import field_line

START_TIMEOUT: float = DEFAULTS["pack"]["start_timeout"]


class Overdue(Exception):
    """An app's start or stop was still busy when its time ran out."""


async def _awaited(result: Any) -> Any:
    return await result


async def settle(result: Any, timeout: float, clock: IReactorTime) -> Any:
    """C{result}, awaited if it is a Deferred or a coroutine, for at most C{timeout}
    seconds: then it is cancelled and L{Overdue} raised at once, even if it
    ignores the cancel, so the manager's lock is never held by work that hangs.
    Cancelling the wait cancels the work, and ends the wait the same way."""
    if not (isinstance(result, Deferred) or inspect.isawaitable(result)):
        return result
    work = result if isinstance(result, Deferred) else Deferred.fromCoroutine(_awaited(result))
    # A Deferred of our own: a coroutine's Deferred, cancelled, waits for the
    # coroutine to end (so Deferred.addTimeout would too).
    outcome: Deferred[Any] = Deferred(lambda _: work.cancel())
    late = False

    def relay(value: Any) -> None:  # consumes the work's result: no unhandled failure
        if not late and not outcome.called:
            outcome.callback(value)  # a Failure goes on as a failure

    def expire() -> None:
        nonlocal late
        late = True
        work.cancel()  # before the rollback that follows the error
        if not outcome.called:
            outcome.errback(Overdue(timeout))

    timer = clock.callLater(timeout, expire)
    work.addBoth(relay)
    try:
        return await outcome
    finally:
        if timer.active():
            timer.cancel()


def start_timeout(config: Config) -> float:
    """The app's C{pack.start_timeout} (its own view may give it more time)."""
    seconds = read_number(config.get("pack.start_timeout", START_TIMEOUT), float)
    return seconds if seconds is not None and seconds > 0 else START_TIMEOUT


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
    start_type: str = "temporary"  # permanent | transient | temporary (its release entry's)

    @property
    def name(self) -> str:
        return self.definition.name

    def where(self) -> tuple[str, str, int | None]:
        """The file, field and line to name in an error about this app (reads lines lazily)."""
        app = self.definition
        key = "supervisor" if app.supervisor is not None else "mod"
        if app.path is not None:
            return (str(app.path), key, field_line(app.path, key))
        return self.entry_where or (f"app {app.name!r}", key, None)

    def info(self) -> AppInfo:
        return AppInfo(self.name, self.definition.version, self.status, self.release)


def load_module(rec: RunningApp) -> ModuleType | None:
    """The app's module, imported and checked; errors name where the app is defined."""
    app = rec.definition
    if app.mod is None:
        return None  # a library app: its modules are used, nothing runs
    module_name = app.mod[0]

    def fail(reason: str) -> AppFileError:
        path, field, line = rec.where()
        return AppFileError(path, reason, field, line)

    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise fail(f"cannot import module {module_name!r}: {exc}") from exc
    except Exception as exc:  # found, but fails as it runs: SyntaxError, NameError, ...
        raise fail(f"importing module {module_name!r} failed: {named(exc)}") from exc
    if not callable(getattr(module, "start", None)):
        raise fail(
            f"module {module_name!r} has no start(container, starttype, app_definition, ...)"
        )
    check = getattr(module, "check", None)
    if check is not None:
        try:
            check(app, *app.mod[1], **rec.kwargs)
        except AppFileError:  # names its own file, field and line
            raise
        except IonError as exc:  # ion's own errors say what is wrong
            raise fail(f"app {app.name!r}: {exc}") from exc
        except Exception as exc:
            raise fail(f"app {app.name!r}: check failed: {named(exc)}") from exc
    return module


def named(exc: BaseException) -> str:
    """C{exc} as one line of an error message: its type, then its text."""
    return f"{type(exc).__name__}: {exc}"
