"""The permission regexes ion-admin gives a system's users, read as RabbitMQ reads
them (Python's re agrees with PCRE on these): which names and binding keys they let through."""

from __future__ import annotations

import re

import pytest

from ion.admin.grants import check_user, container_grant, observer_grant
from ion.core.exception import ConfigurationError


def _binds(user: str, key: str) -> bool:
    grant = container_grant("lab", user)
    return re.search(grant.topic_read.replace("{username}", user), key) is not None


@pytest.mark.parametrize(
    "key", ["hello", "svc.hello", "p.1@cc1", "p.1@cc1.reply", "a.b.3@cc1.host_12.reply",
            "cc.cc1", "cc.cc1.host_1", "dead_letters"],
)  # fmt: skip
def test_container_binds_own_keys_and_services(key: str) -> None:
    assert _binds("cc1", key)


@pytest.mark.parametrize(
    "key", ["#", "*", "p.*", "p.#", "*.1@cc1", "p.1@cc2", "p.1@cc2.reply", "p.1@cc10",
            "p.1@cc1x", "cc.cc2", "cc.cc10", "p.1@cc2@cc1", ""],
)  # fmt: skip
def test_container_refused_others_keys_and_wildcards(key: str) -> None:
    assert not _binds("cc1", key)


@pytest.mark.parametrize(
    "name, ok",
    [("ion.lab", True), ("ion.lab.events", True), ("ion.lab.containers", True),
     ("lab.hello", True), ("lab.dead_letters", True), ("lab.p.1@cc1", True),
     ("lab.p.1@cc1.reply", True), ("lab.p.1@cc1.events.2", True), ("lab.cc.cc1.3", True),
     ("amq.gen-abc", True), ("lab.p.1@cc2", False), ("lab.cc.cc2.3", False),
     ("ion.other", False), ("other.hello", False), ("ion.labx", False), ("labx.hello", False)],
)  # fmt: skip
def test_container_names(name: str, ok: bool) -> None:
    grant = container_grant("lab", "cc1")
    assert grant.configure == grant.read == grant.write
    assert (re.search(grant.configure, name) is not None) is ok


def test_observer_binds_everything_of_its_system_only() -> None:
    grant = observer_grant("lab")
    assert re.search(grant.topic_read, "#") and grant.topic_exchange == "ion.lab"
    assert re.search(grant.read, "lab.p.1@cc2") and not re.search(grant.read, "other.x")


@pytest.mark.parametrize("name", ["a.b", "", "x" * 65, "a b", "a*", "a#", "é"])
def test_bad_user_names_refused_naming_the_field(name: str) -> None:
    with pytest.raises(ConfigurationError, match="--container"):
        check_user(name, "--container")
