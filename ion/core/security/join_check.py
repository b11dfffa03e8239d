"""The boot check of a signing container: it does not join a system whose
messages it cannot verify.

Once its agent takes from the agent queue (bound to the system's fanout) and
before any app starts, the container listens for C{security.join_check}
seconds (default: 1.5 of its heartbeat intervals, so every live peer with the
same interval has beaten at least once). A peer's agent message that does not
verify (unsigned, an unknown key id, a bad signature) stops the boot with a
L{StartupError} naming that container and why. With no other container, or
only peers that verify, the container starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred

from ion.core.exception import ConfigurationError, SignatureError, StartupError
from ion.core.messaging import message as m

if TYPE_CHECKING:
    from ion.core.cc.container import Container

_CC = "cc"  # the agents' protocol (ion.core.cc.agent_wire.CC)


def join_window(container: Container) -> float:
    """Seconds the boot check listens (0: no check)."""
    config = container.config
    window = config.get("security.join_check")
    if window is None:
        return 1.5 * float(config.get("agent.heartbeat", 1.0))
    if not isinstance(window, int | float) or isinstance(window, bool) or window < 0:
        raise ConfigurationError(
            f"security.join_check must be a number of seconds (0: no check), not {window!r}"
        )
    return float(window)


async def check_join(container: Container) -> None:
    """Raise L{StartupError} if a peer's agent messages do not verify here."""
    signer = container.exchange.signer
    if signer is None or container.agent is None:
        return
    window = join_window(container)
    if window <= 0:
        return
    refused: list[tuple[dict[str, Any], SignatureError]] = []
    done: Deferred[None] = Deferred()

    def heard(headers: dict[str, Any], error: SignatureError) -> None:
        if headers.get(m.PROTOCOL) != _CC:
            return  # a process's message: its own business, not the system's keys
        refused.append((headers, error))
        if not done.called:
            done.callback(None)

    def over() -> None:
        if not done.called:
            done.callback(None)

    timer = container.reactor.callLater(window, over)
    signer.listeners.append(heard)
    try:
        await done
    finally:
        signer.listeners.remove(heard)
        if timer.active():
            timer.cancel()
    if refused:
        headers, error = refused[0]
        raise StartupError(
            f"container {container.id} will not join system {container.sysname}: "
            f"container {_peer(headers)} sends messages it cannot verify ({error.reason}). "
            "Every container of a signing system needs security.signing on and the same keys."
        )


def _peer(headers: dict[str, Any]) -> str:
    """The container a message says it is from (an agent's id ends in @<container>)."""
    sender = headers.get(m.SENDER)
    if not isinstance(sender, str):
        return "(unnamed)"
    cid = sender.rpartition("@")[2]
    return repr(cid) if len(cid) <= 64 and cid.isprintable() else repr(cid[:61] + "...")
