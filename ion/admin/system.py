"""Set up and tear down an ion system on RabbitMQ: its vhost, a broker user per
container (or app) with a generated password, and an observer user.

Each user's credentials go into a config file of its own, C{<dir>/<user>.yml},
mode 0600, that a container loads with C{--config}: C{broker.url} (the vhost),
C{broker.username}, C{broker.password} and C{broker.secure: true}. Passwords
reach rabbitmqctl on its stdin, never on a command line.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import yaml

from ion.admin.grants import Grant, check_user, container_grant, observer_grant
from ion.admin.rabbitmqctl import AdminError, Rabbitmqctl
from ion.core.exception import ConfigurationError
from ion.core.id import InvalidNameError, check_sysname

TAG_PREFIX = "ion-system:"  # the tag that marks a user as one of a system's


def checked_sysname(sysname: str) -> str:
    """C{sysname} if it can name a system; L{ConfigurationError} naming SYSNAME if not."""
    try:
        return check_sysname(sysname)
    except InvalidNameError as e:
        raise ConfigurationError(f"SYSNAME: {e}") from None


def system_tag(sysname: str) -> str:
    return TAG_PREFIX + sysname


@dataclass
class Plan:
    """What L{setup} makes: system C{sysname} in vhost C{vhost}, reached at C{url}
    (C{amqp://host:port}, no credentials, no vhost)."""

    sysname: str
    containers: list[str]
    observer: str | None = None
    url: str = "amqp://127.0.0.1:5672"
    vhost: str = ""
    written: dict[str, Path] = field(default_factory=dict)  # user -> config file

    def __post_init__(self) -> None:
        checked_sysname(self.sysname)
        self.vhost = self.vhost or self.sysname
        if not self.containers:
            raise ConfigurationError("--container: a system needs at least one container user")
        users = [check_user(c, "--container") for c in self.containers]
        if self.observer is not None:
            users.append(check_user(self.observer, "--observer"))
        twice = sorted({u for u in users if users.count(u) > 1})
        if twice:
            raise ConfigurationError(f"--container/--observer: {', '.join(twice)} given twice")
        if not self.url.startswith(("amqp://", "amqps://")) or "@" in self.url:
            raise ConfigurationError(
                f"--url {self.url!r}: expected amqp[s]://host:port, without credentials"
            )

    def grants(self) -> dict[str, Grant]:
        made = {c: container_grant(self.sysname, c) for c in self.containers}
        if self.observer is not None:
            made[self.observer] = observer_grant(self.sysname)
        return made

    def config_for(self, user: str, password: str) -> dict[str, object]:
        """The container config of C{user}: where, who, and C{broker.secure}."""
        vhost = quote(self.vhost, safe="")
        return {
            "sysname": self.sysname,
            "broker": {
                "url": f"{self.url.rstrip('/')}/{vhost}",
                "username": user,
                "password": password,
                "secure": True,
            },
        }


def _write_private(path: Path, text: str) -> None:
    """Write C{text} to a new file C{path} that only its owner may read (0600 from the start)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def setup(ctl: Rabbitmqctl, plan: Plan, out: Path) -> dict[str, Path]:
    """Make the vhost and users of C{plan} and write each user's config file into
    C{out}; return them by user. Nothing is made when a user exists already or a
    file would be overwritten; a failure half way undoes what was made.

    @raise AdminError: a rabbitmqctl step failed, or a name is taken.
    """
    grants = plan.grants()
    files = {user: out / f"{user}.yml" for user in grants}
    taken = [str(p) for p in files.values() if p.exists()]
    if taken:
        raise AdminError(f"--out: {', '.join(taken)} exist already; not overwritten")
    existing = {u.get("user") for u in ctl.users()}
    clash = sorted(set(grants) & existing)
    if clash:
        raise AdminError(f"broker user {', '.join(clash)} exists already (teardown first?)")
    if plan.vhost in ctl.vhosts():  # (and a failed setup must not delete what it did not make)
        raise AdminError(f"vhost {plan.vhost} exists already (teardown first, or --vhost)")
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    made_users: list[str] = []
    try:
        ctl.run("add_vhost", plan.vhost)
        for user, grant in grants.items():
            password = secrets.token_urlsafe(24)
            ctl.run("add_user", user, stdin=password + "\n")
            made_users.append(user)
            ctl.run("set_user_tags", user, system_tag(plan.sysname))
            ctl.run("set_permissions", "-p", plan.vhost, user,
                    grant.configure, grant.write, grant.read)  # fmt: skip
            ctl.run("set_topic_permissions", "-p", plan.vhost, user,
                    grant.topic_exchange, grant.topic_write, grant.topic_read)  # fmt: skip
            config = plan.config_for(user, password)
            _write_private(files[user], yaml.safe_dump(config, sort_keys=False))
            plan.written[user] = files[user]
    except (AdminError, OSError):
        _undo(ctl, plan.vhost, made_users, list(plan.written.values()))
        raise
    return dict(plan.written)


def _undo(ctl: Rabbitmqctl, vhost: str, users: list[str], files: list[Path]) -> None:
    """Best effort: the error that made us undo is the one to report."""
    for path in files:
        path.unlink(missing_ok=True)
    steps = [("delete_user", user, (0, 67)) for user in users]  # 67: no such user
    steps.append(("delete_vhost", vhost, (0, 65)))  # 65: no such vhost
    for command, name, ok in steps:
        try:
            ctl.run(command, name, ok=ok)
        except AdminError:
            pass


def teardown(ctl: Rabbitmqctl, sysname: str, vhost: str | None = None) -> list[str]:
    """Delete system C{sysname}'s vhost (with its queues and exchanges) and its
    users (those L{setup} tagged); return the users deleted."""
    tag = system_tag(checked_sysname(sysname))
    users = [str(u["user"]) for u in ctl.users() if tag in (u.get("tags") or [])]
    for user in users:
        ctl.run("delete_user", user, ok=(0, 67))
    ctl.run("delete_vhost", vhost or sysname, ok=(0, 65))
    return users
