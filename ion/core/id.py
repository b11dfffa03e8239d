"""Process ids: unique, printable and parseable names of processes.

A process id reads C{<name>.<n>@<container-id>}: the process name, a number
unique within its container, and the container's id. It is also the routing
key of the process's mailbox, so its characters are restricted to ones that
can never act as a wildcard in a binding.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field

from ion.core.exception import IonError

_NAME = r"[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*"
_NAME_RE = re.compile(rf"^{_NAME}$")
_PID_RE = re.compile(rf"^(?P<name>{_NAME})\.(?P<local>[0-9]+)@(?P<container>{_NAME})$")


class InvalidNameError(IonError):
    """A name or id uses characters ion does not allow in routing keys."""


# Names are joined into queue names and routing keys, which AMQP caps at 255
# bytes: <sysname>.<name>.<n>@<container>.reply must fit.
MAX_NAME = 64


def check_name(name: str, what: str = "name") -> str:
    """Return C{name} if it is a valid ion name (letters, digits, C{_-}, dots between
    words; at most L{MAX_NAME} characters)."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidNameError(
            f"invalid {what} {name!r}: use letters, digits, '_' and '-', words joined by '.'"
        )
    if len(name) > MAX_NAME:
        raise InvalidNameError(f"invalid {what} {name[:20]!r}...: longer than {MAX_NAME}")
    return name


def check_sysname(name: str) -> str:
    """Return C{name} if it can name a system: a valid name, and not C{amq} (its
    queues would be C{amq.*}, which a broker keeps for itself)."""
    check_name(name, "sysname")
    if name == "amq" or name.startswith("amq."):
        raise InvalidNameError(f"invalid sysname {name!r}: 'amq.' names are the broker's own")
    return name


def default_container_id() -> str:
    """A container id from the host name and the OS process id."""
    host = re.sub(r"[^A-Za-z0-9_\-]", "-", socket.gethostname().split(".")[0]) or "host"
    return f"{host}_{os.getpid()}"


@dataclass(frozen=True, slots=True)
class ProcessId:
    """The id of one process: C{name.local@container}."""

    name: str
    local: int
    container: str
    _text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Formatted once: the id is written into the headers of every message.
        object.__setattr__(self, "_text", f"{self.name}.{self.local}@{self.container}")

    def __str__(self) -> str:
        return self._text

    @classmethod
    def parse(cls, text: str) -> ProcessId:
        """Parse C{name.n@container}; raise L{InvalidNameError} if it is not one."""
        match = _PID_RE.match(text) if isinstance(text, str) else None
        if match is None:
            raise InvalidNameError(f"not a process id: {text!r} (expected name.n@container)")
        return cls(match["name"], int(match["local"]), match["container"])

    @staticmethod
    def is_pid(text: str) -> bool:
        """Whether C{text} reads as a process id (rather than a service name)."""
        return isinstance(text, str) and _PID_RE.match(text) is not None
