"""The policy file: what it may hold, the errors that name the file and field,
and the decisions it makes (no container here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ion.core.config import DEFAULTS, Config
from ion.core.exception import ConfigurationError, Unauthorized
from ion.core.messaging import message as m
from ion.core.security.policy import (
    ALLOWED,
    FORBIDDEN,
    MAX_COUNTS,
    OTHER_OP,
    UNAUTHENTICATED,
    Policy,
    load_policy,
    read_policy,
)

GOOD = """
default: deny
users: {alice: [cc.admin, operator], bob: [operator], carol: []}
services:
  hello: {hello: [operator], ping: [], whoami: ["*"], "*": [cc.admin]}
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "policy.yml"
    path.write_text(text)
    return str(path)


def test_no_policy_set_is_none() -> None:
    assert load_policy(Config(DEFAULTS)) is None


def test_a_good_file_decides_by_role_user_and_default(tmp_path: Path) -> None:
    policy = load_policy(Config(DEFAULTS).merged({"security": {"policy": write(tmp_path, GOOD)}}))
    assert policy is not None and policy.default == "deny"
    decide = policy.decide
    assert decide("hello", "hello", "bob")[0] == ALLOWED
    assert decide("hello", "hello", None)[0] == UNAUTHENTICATED
    assert decide("hello", "hello", "carol")[0] == FORBIDDEN
    assert decide("hello", "hello", "mallory")[0] == FORBIDDEN  # known to nobody: no roles
    assert decide("hello", "ping", None)[0] == ALLOWED  # []: anyone
    assert decide("hello", "whoami", "mallory")[0] == ALLOWED  # "*": anyone who says who
    assert decide("hello", "whoami", None)[0] == UNAUTHENTICATED
    assert decide("hello", "reset", "bob")[0] == FORBIDDEN  # the service's "*"
    assert decide("hello", "reset", "alice")[0] == ALLOWED
    assert decide("other", "x", "alice")[0] == FORBIDDEN  # default deny
    assert decide("hello", "hello", 7)[0] == UNAUTHENTICATED  # not a name


def test_the_agent_ops_need_cc_admin_even_under_default_allow() -> None:
    policy = Policy(default="allow", users={"bob": ["operator"], "root": ["cc.admin"]})
    for op in ("spawn", "terminate", "kill"):
        assert policy.decide("cc_agent", op, None)[0] == UNAUTHENTICATED
        assert policy.decide("cc_agent", op, "bob")[0] == FORBIDDEN
        assert policy.decide("cc_agent", op, "root")[0] == ALLOWED
    assert policy.decide("cc_agent", "get_info", None)[0] == ALLOWED


def test_counts_stay_bounded_whatever_ops_are_sent() -> None:
    policy = Policy()
    for i in range(MAX_COUNTS + 50):
        policy.count("hello", f"op{i}", ALLOWED)
    assert len(policy.counts) == MAX_COUNTS + 1
    assert policy.counts[("hello", OTHER_OP, ALLOWED)] == 50


BAD = {
    "not_yaml": ("default: [allow\n", ["malformed YAML", "line"]),
    "alias": ("a: &x [1]\nb: *x\n", ["aliases"]),
    "not_a_mapping": ("- allow\n", ["expected a mapping", "list"]),
    "unknown_key": ("default: allow\nroles: {}\n", ["field 'roles'", "unknown field"]),
    "bad_default": ("default: maybe\n", ["field 'default'", "'maybe'"]),
    "users_not_mapping": ("users: [alice]\n", ["field 'users'", "expected a mapping"]),
    "roles_not_list": ("users: {alice: cc.admin}\n", ["field 'users.alice'", "list of role"]),
    "role_not_string": ("users: {alice: [1]}\n", ["field 'users.alice'", "[1]"]),
    "ops_not_mapping": ("services: {hello: [hello]}\n", ["field 'services.hello'", "mapping"]),
    "op_roles_wrong": ("services: {hello: {hello: yes}}\n", ["field 'services.hello.hello'"]),
    "op_key_not_string": ("services: {hello: {1: []}}\n", ["field 'services.hello'", "op name"]),
    "loosen_agent": (
        "services: {cc_agent: {spawn: [operator]}}\n",
        ["field 'services.cc_agent.spawn'", "cannot loosen"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_file_is_an_error_naming_the_file_and_field(tmp_path: Path, case: str) -> None:
    text, words = BAD[case]
    path = write(tmp_path, text)
    with pytest.raises(ConfigurationError) as info:
        read_policy(path)
    message = str(info.value)
    assert message.startswith(f"security.policy {path}: ")
    for word in words:
        assert word in message, message


def test_a_missing_file_or_a_path_that_is_not_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="nosuch.yml: cannot read it"):
        read_policy(str(tmp_path / "nosuch.yml"))
    with pytest.raises(ConfigurationError, match="security.policy: expected a file path, not 3"):
        load_policy(Config({"security": {"policy": 3}}))


def test_an_agent_entry_that_keeps_cc_admin_is_accepted(tmp_path: Path) -> None:
    policy = read_policy(write(tmp_path, "services: {cc_agent: {spawn: [cc.admin]}}\n"))
    assert policy.decide("cc_agent", "spawn", None)[0] == UNAUTHENTICATED


class _Delivery:
    def __init__(self, user_id: str | None) -> None:
        self.user_id = user_id


def _request(user: str | None, broker_user: str | None) -> m.Message:
    headers = {m.OP: "hello", **({m.USER_ID: user} if user is not None else {})}
    return m.Message(headers, None, _Delivery(broker_user))


def test_on_a_proven_system_an_unsigned_user_id_must_be_the_broker_users(tmp_path: Path) -> None:
    """broker.secure on, signing off: a user-id other than the broker user that
    sent it is a 401 (never reaches the roles), unless that broker user is a relay."""
    text = GOOD + "relays: [gateway]\n"
    config = Config(DEFAULTS).merged(
        {"security": {"policy": write(tmp_path, text)}, "broker": {"secure": True}}
    )
    policy = load_policy(config)
    assert policy is not None and policy.proven and policy.relays == {"gateway"}
    forged = policy.judge("hello", _request("alice", "mallory"), 0.0)
    assert isinstance(forged, Unauthorized) and "not proven" in str(forged)
    assert "broker user 'mallory'" in str(forged)
    assert policy.judge("hello", _request("bob", "bob"), 0.0) is None  # its own name
    assert policy.judge("hello", _request("alice", "gateway"), 0.0) is None  # a relay
    assert policy.judge("hello", _request("alice", "mallory"), 0.0, verified=True) is None
    assert policy.judge("hello", _request("alice", None), 0.0) is None  # nothing proven
    counts = {d["decision"]: d["count"] for d in policy.info()["decisions"]}
    assert counts == {UNAUTHENTICATED: 1, ALLOWED: 4}


def test_on_a_shared_login_the_user_id_is_taken_as_it_comes(tmp_path: Path) -> None:
    policy = load_policy(Config(DEFAULTS).merged({"security": {"policy": write(tmp_path, GOOD)}}))
    assert policy is not None and not policy.proven
    assert policy.judge("hello", _request("alice", "guest"), 0.0) is None


@pytest.mark.parametrize("relays", ["gateway", "[1]", "['']", "{a: b}"])
def test_relays_must_be_a_list_of_names(tmp_path: Path, relays: str) -> None:
    with pytest.raises(ConfigurationError, match="field 'relays': expected a list of broker user"):
        read_policy(write(tmp_path, GOOD + f"relays: {relays}\n"))
