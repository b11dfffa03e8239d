"""Where code runs: the container (and process, and caller's identity) a
handler, the shell or a test runs in, kept in a C{contextvars} context.

A client made with no arguments (C{HelloServiceClient()}) finds its container
here. The places that run user code set it: a process around each handler and
hook (with the request's C{user-id}, the default identity of the calls the
handler makes), the shell around each line, C{IonTestCase} around each test,
the pytest plugin around each test that uses its container fixtures (and the
test's own fixtures that take them). Nothing is kept at
module level, so several containers in one reactor each see their own.

Twisted runs a coroutine (C{ensureDeferred}, C{Deferred.fromCoroutine},
C{inlineCallbacks}) in a copy of the context it was started in, so what a
handler awaits sees the handler's place; a plain Deferred callback runs in
the context of whoever fires it, and does not.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, Token
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, ensureDeferred

from ion.core.exception import ProcessError

if TYPE_CHECKING:
    from ion.core.cc.container import Container
    from ion.core.process.process import Process

__all__ = ["Here", "current", "entered", "here", "left", "user_id"]


class Here:
    """One place code runs in.

    @param container: the container there.
    @param process: the process whose handler or hook runs (None: none).
    @param user_id: the identity of the request being handled (None: none).
    @param find: instead of C{container}, returns the container there is when
        asked (or None): a test's place is set before its container starts.
    """

    __slots__ = ("_container", "_find", "process", "user_id")

    def __init__(
        self,
        container: Container | None = None,
        process: Process | None = None,
        user_id: str | None = None,
        *,
        find: Callable[[], Container | None] | None = None,
    ) -> None:
        self._container = container
        self._find = find
        self.process = process
        self.user_id = user_id

    @property
    def container(self) -> Container | None:
        if self._container is None and self._find is not None:
            return self._find()
        return self._container

    def of_user(self, user_id: str) -> Here:
        """This place, handling a request of C{user_id}."""
        return Here(self._container, self.process, user_id, find=self._find)

    def __repr__(self) -> str:
        return f"<Here {self.container!r} process={self.process} user_id={self.user_id!r}>"


_here: ContextVar[Here | None] = ContextVar("ion_here", default=None)


def current() -> Here | None:
    """The place the calling code runs in, if any."""
    return _here.get()


def entered(place: Here) -> Token[Here | None]:
    """Make C{place} current; give the token to L{left} to undo it."""
    return _here.set(place)


def left(token: Token[Here | None]) -> None:
    """Undo the L{entered} that gave C{token}."""
    _here.reset(token)


def here(what: str) -> Here:
    """The current place, with a container.

    @param what: who asks, for the error (C{"HelloServiceClient()"}).
    @raise ProcessError: outside any container, saying how to pass one.
    """
    place = _here.get()
    if place is None or place.container is None:
        raise ProcessError(
            f"{what} runs outside any ion container, so it cannot find one: pass "
            "proc=<a Process> or container=<a Container>. (Inside a process's handler "
            "or hook, the ion shell, an IonTestCase test or a test using the "
            "ion_container fixture, the container is found by itself.)"
        )
    return place


def user_id() -> str | None:
    """The identity of the request being handled here (None: none)."""
    place = _here.get()
    return place.user_id if place is not None else None


def waitable(result: Any) -> Deferred[Any] | None:
    """What user code returned (a handler's, a timer's), as a Deferred to wait
    on: itself, or any awaitable run; None for a plain value (it is done)."""
    if isinstance(result, Deferred):
        return result
    if hasattr(result, "__await__"):
        return ensureDeferred(result if isinstance(result, CoroutineType) else _awaited(result))
    return None


async def _awaited(result: Any) -> Any:
    """Await any awaitable (ensureDeferred takes only coroutines and Deferreds)."""
    return await result
