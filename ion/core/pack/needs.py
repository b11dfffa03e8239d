"""An app's C{needs:}: services it calls, served by this container or another.

C{applications:} keeps OTP's meaning: apps started I{here}, before this one.
C{needs: [kv, ...]} starts nothing: before the app starts, each service must be
served somewhere in the system, that is, its queue (C{<sysname>.<service>})
has a consumer. The app manager asks the broker (a passive queue declare on
RabbitMQ, the same count on the embedded broker) on its clock, more slowly as
time goes (L{POLL_FIRST} doubling to L{POLL_MAX}), for at most
C{pack.needs_timeout} seconds; a service still unserved then fails the start
with L{NeededServiceError}, naming the service and the system.

After an app starts, each service its new processes serve that others in the
system serve too is logged at info level, with the count: the calls are now
shared (L{report_instances}).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger

from ion.core.config import DEFAULTS, Config, read_number
from ion.core.exception import BrokerError, ResourceLockedError, StartupError
from ion.core.pack.appfile import AppDefinition
from ion.core.pack.fileformat import field_line
from ion.core.pack.running import AppStartError

if TYPE_CHECKING:
    from ion.core.cc.container import Container
    from ion.core.messaging.exchange import ExchangeManager

log = Logger()

NEEDS_TIMEOUT: float = DEFAULTS["pack"]["needs_timeout"]
POLL_FIRST = 0.05  # seconds before the second look
POLL_MAX = 1.0  # seconds between looks, at most


class NeededServiceError(AppStartError):
    """A service an app C{needs:} is served nowhere in the system.

    @ivar service: the service; @ivar sysname: the system.
    """

    def __init__(
        self,
        path: str,
        app: str,
        service: str,
        sysname: str,
        waited: float,
        line: int | None = None,
        last_error: BaseException | None = None,
    ) -> None:
        self.service, self.sysname = service, sysname
        reason = (
            f"app {app!r} needs service {service!r}, which no container of system "
            f"{sysname!r} serves (waited {waited:g}s, pack.needs_timeout); start it, "
            "or the app that serves it, in a container of that system"
        )
        if last_error is not None:
            reason += f" (last look failed: {last_error})"
        super().__init__(path, reason, "needs", line)


def needs_timeout(config: Config) -> float:
    """The app's C{pack.needs_timeout}: seconds to wait for each needed service."""
    seconds = read_number(config.get("pack.needs_timeout", NEEDS_TIMEOUT), float)
    return seconds if seconds is not None and seconds >= 0 else NEEDS_TIMEOUT


async def served(exchange: ExchangeManager, service: str) -> int:
    """How many consumers in the system take C{service}'s calls (a process's own,
    exclusive queue counts as one: it is consumed by its owner)."""
    try:
        return int(await exchange.service_consumers(service))
    except ResourceLockedError:
        return 1


async def wait_served(
    exchange: ExchangeManager,
    service: str,
    timeout: float,
    clock: Any,
    stopping: Callable[[], bool],
    waiting: Callable[[], None] = lambda: None,
) -> BaseException | None:
    """Wait until C{service} is served in the system, at most C{timeout} seconds
    measured on C{clock} (an C{IReactorTime}); C{waiting} is called once, when
    the first look did not find it served and the wait begins.

    @return: None once it is; else what the last look failed with (a broker
        error), or a L{LookupError} when the looks went well and found nobody.
    @raise StartupError: the container began to stop while waiting.
    """
    deadline = clock.seconds() + timeout
    delay = POLL_FIRST
    while True:
        error: BaseException
        try:
            if await served(exchange, service) > 0:
                return None
            error = LookupError(service)
        except BrokerError as e:  # a lost connection comes back: keep looking
            error = e
        left = deadline - clock.seconds()
        if left <= 0:
            return error
        if stopping():
            raise StartupError(f"stopped while waiting for service {service!r}")
        if delay == POLL_FIRST:
            waiting()
        await deferLater(clock, min(delay, left), lambda: None)
        delay = min(delay * 2, POLL_MAX)


async def report_instances(exchange: ExchangeManager, app: str, services: Iterable[str]) -> None:
    """Log, at info level, each of C{services} that more than one consumer serves."""
    for service in dict.fromkeys(services):
        try:
            count = await served(exchange, service)
        except BrokerError:
            continue  # only a report: the app has started either way
        if count > 1:
            log.info(
                "app {app} adds an instance of service {service}: {count} instances "
                "in system {sysname} now share its calls",
                app=app,
                service=service,
                count=count,
                sysname=exchange.sysname,
            )


def services_of(processes: Iterable[Any]) -> list[str]:
    """The service names the given processes serve (those that are services)."""
    return [name for p in processes if (name := getattr(p, "svc_name", None))]


async def await_needs(
    container: Container,
    app: AppDefinition,
    config: Config,
    clock: IReactorTime,
    stopped: Callable[[], bool],
) -> None:
    """Wait until each service C{app} needs is served in the system (or C{stopped()}).

    @raise NeededServiceError: one is still not served after C{pack.needs_timeout}.
    """
    timeout = needs_timeout(config)
    for service in app.needs:
        waiting = functools.partial(
            log.info,
            "app {app} waits for service {service}, which no container of system "
            "{sysname} serves yet (up to {timeout:g}s, pack.needs_timeout)",
            app=app.name,
            service=service,
            sysname=container.sysname,
            timeout=timeout,
        )
        error = await wait_served(container.exchange, service, timeout, clock, stopped, waiting)
        if error is not None:
            path = str(app.path) if app.path is not None else f"app {app.name!r}"
            raise NeededServiceError(
                path,
                app.name,
                service,
                container.sysname,
                timeout,
                line=field_line(app.path, "needs"),
                last_error=None if isinstance(error, LookupError) else error,
            )
