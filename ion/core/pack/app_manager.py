"""The app manager: starts apps and releases in a container, and stops them again.

An app's module (the first item of its C{mod}) provides

    start(container, starttype, app_definition, *args, **kwargs) -> state
    stop(container, state)                                  # optional
    check(app_definition, *args, **kwargs)                  # optional, raises if unusable

C{start} and C{stop} may return a Deferred or be C{async}; C{check} runs
before anything starts (the process app looks up its class there). An app
without C{mod} is a library app: it is recorded as running, nothing is called.
An app with a C{supervisor:} block (and then no C{mod}) runs
L{ion.core.pack.supervisorapp}: its top supervisor is the app.
C{args} are C{mod}'s args; C{kwargs} are C{mod}'s kwargs < the release entry's
C{args} < L{AppManager.start_app}'s C{args} < the container arg C{apparg_<app>}
(C{-a apparg_hello={greeting: hi}}). The C{app_definition} given to C{start}
carries the app's own config view in C{config}: container config < the
C{.app}'s C{config} < the release entry's C{config} (< C{start_app}'s C{config}).

Everything that can be checked is checked before anything starts: files,
dependencies (order, cycles, missing apps, names, versions), a second start
without C{mult}, and each module's import and C{start}. If an app's C{start}
then fails, or is still busy after C{pack.start_timeout} seconds (then it is
cancelled), the apps this request already started are stopped, newest first,
and one error names the file and field. A C{stop} gets as long; one still busy
then is logged, and the app is dropped.

App files are looked up by name in C{pack.app_path} and release files in
C{pack.rel_path}, relative to C{pack.root} (default: the working directory),
then in ion's own C{res/apps} and C{res/deploy} (package data, see
L{ion.core.pack.places}), so the C{ioncore} app every container starts first,
and C{hello.rel}, are found from anywhere.

C{applications:} are apps started here, before the app; C{needs:} are services
waited for (served here or in another container of the system) before it
starts, for at most C{pack.needs_timeout} seconds (L{ion.core.pack.needs}).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredLock
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ion.core.config import Config, app_config, merge, parse_args_option
from ion.core.exception import (
    AppFileError,
    ConfigurationError,
    IllegalStateError,
    StartupError,
)
from ion.core.pack.app_exit import TEMPORARY, stops_container, watch
from ion.core.pack.appfile import (
    AppDefinition,
    AppRef,
    ReleaseDefinition,
    ReleaseEntry,
    freeze,
    load_release,
)
from ion.core.pack.fileformat import field_line
from ion.core.pack.needs import await_needs, report_instances, services_of
from ion.core.pack.places import APPS, RELEASES, search_dirs
from ion.core.pack.resolve import (
    FileAppLoader,
    find_file,
    is_path,
    load_app_file,
    plan_release,
    resolve,
    version_matches,
)

# AppInfo and AppStartError are part of this module's API too: callers import them from here.
from ion.core.pack.running import (
    AppInfo,
    AppStartError,
    Overdue,
    RunningApp,
    load_module,
    named,
    settle,
    start_timeout,
)

if TYPE_CHECKING:
    from ion.core.cc.container import Container

log = Logger()

STARTTYPE = "normal"
CORE_APP = "ioncore"


class AppManager(Service):
    """Starts apps and releases in dependency order; stops them newest first."""

    name = "app"

    def __init__(self, container: Container) -> None:
        self.container = container
        self._running: list[RunningApp] = []
        # One start or stop at a time: each sees the apps the one before left.
        self._lock = DeferredLock()
        # What bounds starts and stops (tests give a task.Clock).
        self.clock: IReactorTime = container.reactor
        #: Called with the reason when a permanent or transient app fails (the
        #: twistd runner's stops the container and exits non-zero).
        self.on_fatal: Callable[[str], None] = self._stop_container

    # -- where files are ------------------------------------------------------

    @property
    def root(self) -> Path:
        """The directory C{pack.app_path} and C{pack.rel_path} are relative to."""
        root = self.container.config.get("pack.root")
        return Path(root) if root else Path.cwd()

    def _dirs(self, key: str, default: str, kind: str) -> list[Path]:
        dirs = self.container.config.get(key, [default])
        return search_dirs([dirs] if isinstance(dirs, str) else dirs, self.root, kind)

    def _loader(self, extra: Mapping[str, AppDefinition] | None = None) -> Any:
        """A loader by name: running apps, then C{extra}, then files (fresh each request)."""
        files = FileAppLoader(self._dirs("pack.app_path", "res/apps", APPS))
        running = {rec.name: rec.definition for rec in self._running}
        known = {**(extra or {}), **running}

        def load(name: str) -> AppDefinition:
            return known[name] if name in known else files(name)

        return load

    # -- queries ----------------------------------------------------------------

    def apps(self) -> list[AppInfo]:
        """The running apps, in start order."""
        return [rec.info() for rec in self._running]

    def start_types(self) -> dict[str, str]:
        """Each running app's start type: permanent, transient or temporary."""
        return {rec.name: rec.start_type for rec in self._running}

    def is_running(self, name: str) -> bool:
        """Whether an app called C{name} is running."""
        return any(rec.name == name for rec in self._running)

    def config_of(self, name: str) -> Config:
        """The config view of the newest running app C{name}."""
        for rec in reversed(self._running):
            if rec.name == name:
                return rec.config
        raise IllegalStateError(f"app {name!r} is not running")

    # -- starting ---------------------------------------------------------------

    async def boot(self) -> None:
        """Start the C{ioncore} app, which every container runs first."""
        await self.start_app(CORE_APP)

    async def start_app(
        self,
        app: str | os.PathLike[str],
        *,
        config: Mapping[str, Any] | None = None,
        args: Mapping[str, Any] | None = None,
        version: str | None = None,
        mult: bool = False,
        start_type: str = TEMPORARY,
    ) -> AppInfo:
        """Start an app (a name, or the path of its C{.app} file) after the apps it needs.

        Apps it needs that are running are not started again; the app itself,
        if running, only with C{mult}. C{config} and C{args} apply to this app,
        not to its dependencies.
        """
        await self._lock.acquire()
        try:
            extra: dict[str, AppDefinition] = {}
            if is_path(app):
                definition = load_app_file(Path(app))
                name = definition.name
                if not self.is_running(name):
                    extra[name] = definition
            else:
                name = str(app)
            order = resolve([AppRef(name, version)], self._loader(extra), f"start_app({app!s})")
            target = order[-1]
            if self.is_running(name) and not mult:
                raise IllegalStateError(
                    f"app {name!r} is already running; pass mult=True to start another"
                )
            plan = [self._plan(a, None, None) for a in order[:-1] if not self.is_running(a.name)]
            plan.append(self._plan(target, None, None, config=config, args=args))
            plan[-1].start_type = start_type
            started = await self._run(plan)
            return started[-1].info()
        finally:
            self._lock.release()

    async def start_rel(self, path: str | os.PathLike[str]) -> list[AppInfo]:
        """Start a release (the path of a C{.rel} file, or its name): each entry after its deps.

        Apps already running are not started again, unless their entry says
        C{mult: true}.
        """
        await self._lock.acquire()
        try:
            release = self._load_release(path)
            self._check_ioncore(release)
            plan = []
            for step in plan_release(release, self._loader()):
                entry = step.entry
                if self.is_running(step.app.name) and not (entry is not None and entry.mult):
                    log.debug(
                        "release {rel}: app {app} is already running",
                        rel=release.name,
                        app=step.app.name,
                    )
                    continue
                plan.append(self._plan(step.app, entry, release))
            return [rec.info() for rec in await self._run(plan)]
        finally:
            self._lock.release()

    def _load_release(self, path: str | os.PathLike[str]) -> ReleaseDefinition:
        if is_path(path, ".rel"):
            return load_release(path)
        return load_release(
            find_file(str(path), ".rel", self._dirs("pack.rel_path", "res/deploy", RELEASES))
        )

    def _check_ioncore(self, release: ReleaseDefinition) -> None:
        if not release.ioncore:
            return
        core = next((rec for rec in self._running if rec.name == CORE_APP), None)
        have = core.definition.version if core is not None else None
        if have is None or not version_matches(release.ioncore, have):
            running = f"version {have!r}" if have is not None else "no ioncore app"
            raise AppFileError(
                str(release.path or release.name),
                f"the release needs ioncore {release.ioncore!r}; this container runs {running}",
                field="ioncore",
                line=field_line(release.path, "ioncore"),
            )

    def _plan(
        self,
        app: AppDefinition,
        entry: ReleaseEntry | None,
        release: ReleaseDefinition | None,
        config: Mapping[str, Any] | None = None,
        args: Mapping[str, Any] | None = None,
    ) -> RunningApp:
        """Work out an app's config, kwargs and where it is defined; import its module."""
        where = None
        if release is not None and entry is not None:
            index = next(i for i, e in enumerate(release.apps) if e is entry)
            where = (str(release.path or release.name), f"apps[{index}]", entry.line)
        view = app_config(self.container.config, app.config, entry.config if entry else None)
        if config:
            view = view.merged(config)
        kwargs = merge({}, app.mod[2]) if app.mod else {}
        if entry is not None:
            kwargs.update(merge({}, entry.args))
        kwargs.update(args or {})
        kwargs.update(self._apparg(app.name))
        rec = RunningApp(app, view, kwargs, where, release.name if release else None)
        if entry is not None:
            rec.start_type = entry.start_type
        rec.module = load_module(rec)
        return rec

    def _apparg(self, name: str) -> dict[str, Any]:
        """The kwargs of container arg C{apparg_<name>} (a mapping, or text of one)."""
        key = f"apparg_{name}"
        value = self.container.config.get(key)
        if value is None:
            return {}
        if isinstance(value, str):
            value = parse_args_option(value)
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise ConfigurationError(
                f"-a {key}: must be a mapping of keyword arguments, not {value!r}"
            )
        return merge({}, value)

    async def _run(self, plan: list[RunningApp]) -> list[RunningApp]:
        """Start C{plan} in order; if one fails, stop the ones started, newest first."""
        started: list[RunningApp] = []
        for rec in plan:
            try:
                if not self.running:
                    raise StartupError(f"not starting app {rec.name!r}: the container stops")
                started.append(await self._start_one(rec))
            except Exception:
                for done in reversed(started):
                    await self._stop_one(done)
                raise
        return started

    async def _start_one(self, rec: RunningApp) -> RunningApp:
        app, module = rec.definition, rec.module
        definition = dataclasses.replace(app, config=freeze(rec.config.as_dict()))
        await await_needs(self.container, app, rec.config, self.clock, lambda: not self.running)
        before = set(self.container.proc_manager.processes)
        timeout = start_timeout(rec.config)
        try:
            if app.mod is not None:
                started = module.start(
                    self.container, STARTTYPE, definition, *app.mod[1], **rec.kwargs
                )
                rec.state = await settle(started, timeout, self.clock)
        except Exception as exc:
            await self._reap(before)
            path, field, line = rec.where()
            if isinstance(exc, Overdue):
                reason = f"app {app.name!r} did not finish starting within {timeout:g}s"
            else:
                reason = f"app {app.name!r} failed to start: {named(exc)}"
            raise AppStartError(path, reason, field, line) from exc
        rec.status = "running"
        self._running.append(rec)
        watch(rec.state, functools.partial(self._ended, rec))
        log.info("started app {app} {version}", app=app.name, version=app.version)
        procs = self.container.proc_manager.processes
        new = [proc for pid, proc in procs.items() if pid not in before]
        await report_instances(self.container.exchange, app.name, services_of(new))
        self.container.announce(
            1075, app.name, app_name=app.name, version=str(app.version), state="STARTED"
        )
        return rec

    async def _reap(self, before: set[str]) -> None:
        """Terminate processes a failed start left behind, newest first."""
        procs = self.container.proc_manager.processes
        for pid in reversed([pid for pid in procs if pid not in before]):
            proc = procs.get(pid)
            if proc is not None and proc.parent is None:
                try:
                    await self.container.terminate(proc)
                except Exception:
                    log.failure("terminating {pid} after a failed start failed", pid=pid)

    # -- an app that ends by itself ------------------------------------------------

    def _ended(self, rec: RunningApp, reason: str) -> None:
        """The app's top supervisor ended: unless the app was being stopped, it
        failed; its start type says whether the container stops (L{app_exit})."""
        if rec not in self._running or rec.status != "running":
            return  # stopped by stop_app or the container: asked for
        rec.status = "stopped"
        self._running.remove(rec)
        app, kind = rec.definition, rec.start_type
        self.container.announce(
            1075, app.name, app_name=app.name, version=str(app.version), state="FAILED"
        )
        if not stops_container(kind, reason):
            log.warn("app {app} ended: its top supervisor exited {reason} "
                     "(start_type {kind}: only reported)", app=app.name, reason=reason, kind=kind)  # fmt: skip
            return
        why = f"app {app.name} ended: its top supervisor exited {reason} (start_type {kind})"
        log.critical("{why}; stopping the container", why=why)
        self.on_fatal(why)

    def _stop_container(self, why: str) -> None:
        """The default L{on_fatal}: stop the container."""
        Deferred.fromCoroutine(self.container.stop()).addErrback(
            lambda f: log.failure("stopping the container failed", f)
        )

    # -- stopping ---------------------------------------------------------------

    async def stop_app(self, name: str) -> None:
        """Stop every running instance of app C{name}, newest first."""
        await self._lock.acquire()
        try:
            recs = [rec for rec in self._running if rec.name == name]
            if not recs:
                raise IllegalStateError(f"app {name!r} is not running")
            for rec in reversed(recs):
                await self._stop_one(rec)
        finally:
            self._lock.release()

    async def _stop_one(self, rec: RunningApp) -> None:
        """Stop one app (once, even if asked twice); a failing C{stop} is logged."""
        if rec not in self._running or rec.status != "running":
            return
        rec.status = "stopping"
        timeout = start_timeout(rec.config)
        try:
            stop = getattr(rec.module, "stop", None)
            if stop is not None:
                await settle(stop(self.container, rec.state), timeout, self.clock)
        except Overdue:
            log.error("app {app} did not finish stopping within {t:g}s", app=rec.name, t=timeout)
        except Exception:
            log.failure("stopping app {app} failed", app=rec.name)
        finally:
            rec.status = "stopped"
            self._running.remove(rec)
        log.info("stopped app {app}", app=rec.name)
        self.container.announce(
            1075, rec.name, app_name=rec.name, version=str(rec.definition.version), state="STOPPED"
        )

    def stopService(self) -> Deferred[None]:
        """Stop every app, newest first (before the process manager ends the rest)."""
        super().stopService()
        return Deferred.fromCoroutine(self._stop_all())

    async def _stop_all(self) -> None:
        for rec in reversed(list(self._running)):
            await self._stop_one(rec)
