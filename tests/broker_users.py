"""Systems set up by ion-admin on the suite's own RabbitMQ node (C{tls_node}, its
plain port): unique sysnames and user names, torn down by the test that made them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ion.core.config import DEFAULTS, Config
from ion.scripts import ion_admin
from tests.rabbit_node import CTL, RabbitNode, _ctl_env


@dataclass
class AdminSystem:
    """A system ion-admin set up on C{node}: C{users} maps a short role name
    (C{a}, C{b}, C{obs}) to its broker user, C{files} a broker user to its config file."""

    node: RabbitNode
    sysname: str
    users: dict[str, str]
    files: dict[str, Path] = field(default_factory=dict)

    def admin(self, *argv: str) -> int:
        """Run ion-admin on the node (its name, rabbitmqctl and cookie)."""
        common = ["--node", self.node.name, "--rabbitmqctl", str(CTL)]
        return ion_admin.main([*argv, *common], env=_ctl_env(self.node.name, self.node.home))

    def settings(self, role: str) -> dict[str, Any]:
        """The config ion-admin wrote for C{role}'s user."""
        loaded: dict[str, Any] = yaml.safe_load(self.files[self.users[role]].read_text())
        return loaded

    def config(self, role: str, **more: Any) -> Config:
        """A container config from C{role}'s file, with C{more} on top."""
        layer = self.settings(role)
        layer.setdefault("container", {})["rpc_timeout"] = 10
        return Config(DEFAULTS).merged(layer).merged(more)

    def url(self, role: str) -> str:
        """C{role}'s broker URL with its credentials."""
        broker = self.settings(role)["broker"]
        scheme, rest = broker["url"].split("://", 1)
        return f"{scheme}://{broker['username']}:{broker['password']}@{rest}"


def setup_system(
    node: RabbitNode, out: Path, containers: tuple[str, ...] = ("a", "b"), observer: bool = True
) -> AdminSystem:
    """ion-admin setup a new system on C{node}'s plain port; its files go in C{out}."""
    tag = uuid.uuid4().hex[:8]
    users = {role: f"{role}-{tag}" for role in containers}
    if observer:
        users["obs"] = f"obs-{tag}"
    system = AdminSystem(node, f"t-sec-{tag}", users)
    argv = ["setup", system.sysname, "--url", f"amqp://127.0.0.1:{node.port}", "--out", str(out)]
    for role in containers:
        argv += ["--container", users[role]]
    if observer:
        argv += ["--observer", users["obs"]]
    assert system.admin(*argv) == 0
    system.files = {user: out / f"{user}.yml" for user in users.values()}
    return system
