"""The RabbitMQ permissions of a system's broker users, as regular expressions.

A system set up by ion-admin lives in its own vhost (named as the system). Its
names, all derived from the sysname C{S} (L{ion.core.messaging.exchange}):

    exchanges   ion.S (a topic exchange: see below), ion.S.events, ion.S.containers
    queues      S.<service>, S.<subscription>, S.dead_letters          (shared)
                S.<name>.<n>@<container id>[.reply]                  (a process's mailbox)
                S.cc.<container id>.<epoch|presence>                 (a container agent's)

A container's broker user C{U} runs containers whose ids are C{U} or C{U.<more>}
(L{ion.core.messaging.secure}), so every routing key and queue that is one
container's own carries C{U} in a known place: after the C{@} of a process id, or
after C{cc.}. RabbitMQ checks the configure, write and read regexes on queue and
exchange names, and the topic permissions' read regex on the binding keys of the
topic exchange C{ion.S}: there C{{username}} is replaced by the login, so one
rule for all container users lets each bind only its own mailbox and agent keys,
service names, and never C{#} or C{*}. Sending to anyone stays allowed.

User names are letters, digits, C{_} and C{-} (L{check_user}): no dot, so C{U} ends
where the next dot starts, and no regex character but C{-}, which is literal
outside brackets (the C{{username}} expansion does not escape it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ion.core.exception import ConfigurationError

USER_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_WORD = r"[A-Za-z0-9_-]+"
_WORDS = rf"{_WORD}(\.{_WORD})*"  # a valid ion name (ion.core.id): no * # @


def check_user(name: str, field: str) -> str:
    """C{name} if it can be a broker user of a system; L{ConfigurationError} naming C{field}."""
    if not isinstance(name, str) or not USER_RE.match(name):
        raise ConfigurationError(
            f"{field} {name!r}: a broker user name is 1 to 64 letters, digits, '_' or '-' "
            "(no dots: it is one word of the system's routing keys)"
        )
    return name


@dataclass(frozen=True)
class Grant:
    """One user's permissions in a system's vhost: C{configure}, C{write}, C{read}
    (regexes on names), and the topic permissions on C{topic_exchange}."""

    configure: str
    write: str
    read: str
    topic_exchange: str
    topic_write: str
    topic_read: str


def system_exchange(sysname: str) -> str:
    return f"ion.{sysname}"


def container_grant(sysname: str, user: str) -> Grant:
    """The permissions of container user C{user} in system C{sysname}: the system's
    exchanges and shared queues, and of the queues that are one container's, its own."""
    s, u = re.escape(sysname), re.escape(check_user(user, "container user"))
    own = rf"{_WORD}(\.{_WORD})*@{u}(\.{_WORD})*"  # name.n@U[.more][.reply]
    names = (
        rf"^(ion\.{s}(\.events|\.containers)?"
        rf"|{s}\.(?!cc\.)[^@]*"  # shared queues: no process's or agent's
        rf"|{s}\.{own}"
        rf"|{s}\.cc\.{u}(\..*)?"
        r"|amq\.gen-.*)$"
    )
    binding = (
        rf"^(?!cc\.){_WORDS}$"  # a service's key
        rf"|^{_WORD}(\.{_WORD})*@{{username}}(\.{_WORD})*$"  # its processes' mailboxes
        rf"|^cc\.{{username}}(\.{_WORD})*$"  # its agent's
    )
    return Grant(names, names, names, system_exchange(sysname), ".*", binding)


def observer_grant(sysname: str) -> Grant:
    """The permissions of the observer's user: all of the system's names, and
    binding any key (C{#}) on its exchange, so it sees every message."""
    s = re.escape(sysname)
    names = rf"^(ion\.{s}(\..*)?|{s}\..*|amq\.gen-.*)$"
    return Grant(names, names, names, system_exchange(sysname), ".*", ".*")
