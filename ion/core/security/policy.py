"""Who may call what: the table a container checks each incoming request against.

The file named by C{security.policy} (YAML, read as plain data)::

    default: allow            # or deny: what an op the table does not list gets
    users:                    # user-id -> roles
      alice: [cc.admin, operator]
      bob: [operator]
    services:                 # service -> op -> roles (any one of them suffices)
      hello:
        hello: [operator]
        ping: []              # anyone, anonymous too
        whoami: ["*"]         # any caller that says who it is
        "*": [cc.admin]       # every other op of hello
    relays: [gateway]         # broker users that may speak for other users (broker.secure)

The service is the receiving process's service name (a plain process's name;
the container agent's is C{cc_agent}); the op is the request's C{op} header and
the user its C{user-id} header. An op the table does not list, of a service it
lists with no C{"*"} or of one it does not list, gets C{default}.

Refused: an anonymous caller where a role is needed (401); a known caller
without one (403); anyone under C{default: deny} for an unlisted op (403); a
request whose C{expiry} (its caller's deadline) has passed (401). The agent's
mutating ops (L{ADMIN_OPS}) need L{ADMIN_ROLE} whenever a policy is set: a
file cannot loosen that. With no policy set nothing is checked.

Whose word the C{user-id} is: with signing on, a key holder's (a container of
the system), so it is taken. With signing off on a system whose containers each
log in as a broker user of their own (C{broker.secure}), the broker proves who
published each request (L{ion.core.messaging.message.Message.broker_user}), and
a C{user-id} other than that broker user is refused (401) unless the broker
user is listed in C{relays}: a container whose shell, or a gateway, speaks for
people who logged in there. Otherwise (signing off, one shared broker login)
the header is taken as it comes: anyone who can publish can claim any user.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ion.core import exception as exc
from ion.core.messaging import message as m
from ion.core.process.watchdog import passed
from ion.core.safe_yaml import YAMLRefused, load_yaml

__all__ = ["ADMIN_OPS", "ADMIN_ROLE", "AGENT", "Policy", "load_policy", "read_policy"]

ALLOW, DENY = "allow", "deny"
#: Decisions, as counted.
ALLOWED, UNAUTHENTICATED, FORBIDDEN, EXPIRED = "allow", "unauthenticated", "forbidden", "expired"
#: The role the container agent's mutating ops need, built in.
ADMIN_ROLE = "cc.admin"
AGENT = "cc_agent"
ADMIN_OPS = frozenset({"spawn", "terminate", "kill"})
#: The role that any caller with a user-id has.
ANY_USER = "*"
#: Distinct (service, op, decision) counts kept; past it, ops are counted as L{OTHER_OP}
#: (the op is the sender's text: a flood of made-up ops must not grow the table).
MAX_COUNTS = 1000
OTHER_OP = "<other>"

_TOP = frozenset({"default", "users", "services", "relays"})


class Policy:
    """A loaded policy: L{judge} decides one request and counts the decision.

    @ivar source: the file it was read from.
    @ivar counts: decisions per (service, op, decision).
    @ivar unanswered: refusals dropped because the request had no reply-to.
    """

    def __init__(
        self,
        default: str = ALLOW,
        users: Mapping[str, list[str]] | None = None,
        services: Mapping[str, Mapping[str, list[str]]] | None = None,
        source: str = "<policy>",
        relays: list[str] | None = None,
        proven: bool = False,
    ) -> None:
        self.default = default
        #: Broker users that may send a user-id other than their own (see the module doc).
        self.relays = frozenset(relays or ())
        #: Whether the broker proves each sender (broker.secure): user-ids are checked against it.
        self.proven = proven
        self.users = {u: frozenset(r) for u, r in (users or {}).items()}
        self.services = {s: {o: frozenset(r) for o, r in ops.items()} for s, ops in (services or {}).items()}  # fmt: skip
        self.source = source
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self.unanswered = 0

    def roles_for(self, service: str, op: str) -> frozenset[str] | None:
        """The roles C{op} of C{service} needs (empty: anyone); None: the default applies."""
        if service == AGENT and op in ADMIN_OPS:
            return frozenset({ADMIN_ROLE})
        ops = self.services.get(service)
        if ops is None:
            return None
        return ops.get(op, ops.get("*"))

    def decide(self, service: str, op: str, user: Any) -> tuple[str, str]:
        """The decision on C{user} calling C{op} of C{service}, and why (for a refusal)."""
        if user is not None and (not isinstance(user, str) or not user):
            return UNAUTHENTICATED, "the user-id header must be a non-empty string"
        needed = self.roles_for(service, op)
        if needed is None:
            if self.default == ALLOW:
                return ALLOWED, ""
            return FORBIDDEN, f"{service}.{op} is not in the policy, whose default is deny"
        if not needed:
            return ALLOWED, ""
        if user is None:
            return UNAUTHENTICATED, f"{service}.{op} needs a user-id with a role: {_listed(needed)}"
        if ANY_USER in needed or needed & self.users.get(user, frozenset()):
            return ALLOWED, ""
        return FORBIDDEN, f"user {user!r} has none of the roles {service}.{op} needs: {_listed(needed)}"  # fmt: skip

    def judge(
        self, service: str, msg: m.Message, now: float, verified: bool = False
    ) -> exc.ApplicationError | None:
        """Decide the request C{msg} to C{service} at C{now} (seconds since the
        epoch) and count it; the error to answer it with, or None: it may run.
        C{verified}: its signature was checked (signing on)."""
        op = msg.op or ""
        user = msg.headers.get(m.USER_ID)
        unproven = self.unproven(msg, user, verified)
        if passed(msg.headers.get(m.EXPIRY), now):
            decision, why = EXPIRED, "the request expired (its caller's deadline passed)"
        elif unproven is not None:
            decision, why = UNAUTHENTICATED, unproven
        else:
            decision, why = self.decide(service, op, user)
        self.count(service, op, decision)
        if decision == ALLOWED:
            return None
        if decision == FORBIDDEN:
            return exc.Forbidden(why)
        return exc.Unauthorized(why)

    def unproven(self, msg: m.Message, user: Any, verified: bool) -> str | None:
        """Why C{user}, the user-id of C{msg}, cannot be taken as its sender's
        word; None when it can (see the module doc)."""
        if verified or not self.proven or user is None:
            return None
        sent_by = msg.broker_user
        if sent_by is None or user == sent_by or sent_by in self.relays:
            return None
        return (f"user-id {m.shown(user, quote=True)} is not proven: broker user {sent_by!r} sent "
                "it, unsigned, and is not one of the policy's relays")  # fmt: skip

    def count(self, service: str, op: str, decision: str) -> None:
        key = (service, op, decision)
        if key not in self.counts and len(self.counts) >= MAX_COUNTS:
            key = (service, OTHER_OP, decision)
        self.counts[key] += 1

    def info(self) -> dict[str, Any]:
        """What get_info tells of the policy: its file, default and decisions."""
        rows = [{"service": s, "op": o, "decision": d, "count": n}
                for (s, o, d), n in sorted(self.counts.items())]  # fmt: skip
        return {"file": self.source, "default": self.default, "decisions": rows,
                "unanswered": self.unanswered}  # fmt: skip

    def summary(self) -> str:
        """One line for the shell's info."""
        refused = sum(n for (_s, _o, d), n in self.counts.items() if d != ALLOWED)
        allowed = sum(self.counts.values()) - refused
        return (
            f"policy {self.source} (default {self.default}): {allowed} allowed, {refused} refused"
        )


def _listed(roles: frozenset[str]) -> str:
    return ", ".join(sorted(roles))


def load_policy(config: Any) -> Policy | None:
    """The policy of C{security.policy} (a file path), or None when none is set.

    @raise ConfigurationError: the file cannot be read or is not a policy; names the
        file and the field.
    """
    path = config.get("security.policy")
    if path is None:
        return None
    if not isinstance(path, str | Path) or not str(path):
        raise exc.ConfigurationError(f"security.policy: expected a file path, not {path!r}")
    policy = read_policy(str(path))
    policy.proven = bool(config.get("broker.secure", False))
    return policy


def read_policy(path: str) -> Policy:
    """The policy in YAML file C{path}.

    @raise ConfigurationError: naming C{path} and the field at fault.
    """
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as e:
        raise exc.ConfigurationError(f"security.policy {path}: cannot read it: {e.strerror}") from None  # fmt: skip
    except UnicodeDecodeError:
        raise exc.ConfigurationError(f"security.policy {path}: not UTF-8 text") from None
    try:
        data = load_yaml(text)
    except YAMLRefused as e:
        raise exc.ConfigurationError(f"security.policy {path}: {_problem(e)}") from None
    except yaml.YAMLError as e:
        raise exc.ConfigurationError(f"security.policy {path}: malformed YAML, {_problem(e)}") from None  # fmt: skip
    return Policy(**_checked(data, path), source=path)


def _problem(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    return f"line {mark.line + 1}: {problem}" if mark is not None else problem


def _checked(data: Any, path: str) -> dict[str, Any]:
    """The constructor's arguments from the file's C{data}; else a ConfigurationError
    naming C{path} and the field."""

    def bad(field: str, what: str) -> exc.ConfigurationError:
        return exc.ConfigurationError(f"security.policy {path}: field {field!r}: {what}")

    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise exc.ConfigurationError(
            f"security.policy {path}: expected a mapping (default, users, services), "
            f"not {type(data).__name__}"
        )
    for key in data:
        if key not in _TOP:
            raise bad(str(key), "unknown field (expected default, users, services, relays)")
    default = data.get("default", ALLOW)
    if default not in (ALLOW, DENY):
        raise bad("default", f"expected allow or deny, not {default!r}")
    users = _mapping(data.get("users"), "users", bad)
    for user, roles in users.items():
        _names(user, "users", "a user-id", bad)
        _roles(roles, f"users.{user}", bad)
    services = _mapping(data.get("services"), "services", bad)
    for service, ops in services.items():
        _names(service, "services", "a service name", bad)
        for op, roles in _mapping(ops, f"services.{service}", bad).items():
            _names(op, f"services.{service}", "an op name", bad)
            field = f"services.{service}.{op}"
            _roles(roles, field, bad)
            if service == AGENT and op in ADMIN_OPS and set(roles) != {ADMIN_ROLE}:
                raise bad(field, f"built in: {AGENT}.{op} needs {ADMIN_ROLE} (a policy cannot loosen it)")  # fmt: skip
    relays = data.get("relays") or []
    _roles(relays, "relays", bad, "broker user names")
    return {"default": default, "users": users, "services": services, "relays": relays}


def _mapping(value: Any, field: str, bad: Any) -> dict[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad(field, f"expected a mapping, not {type(value).__name__}")
    return value


def _names(key: Any, field: str, what: str, bad: Any) -> None:
    if not isinstance(key, str) or not key:
        raise bad(field, f"expected {what} (a non-empty string) as key, not {key!r}")


def _roles(value: Any, field: str, bad: Any, what: str = "role names") -> None:
    if not isinstance(value, list) or not all(isinstance(r, str) and r for r in value):
        raise bad(field, f"expected a list of {what}, not {value!r}")
