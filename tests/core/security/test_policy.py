"""The policy at work on the embedded broker: each request is judged before its
handler runs; a refusal is a typed 401 or 403 at the caller, never a silent drop;
every decision is counted and shown in the agent's get_info."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from ion.core import exception as exc
from ion.core.cc import agent_client
from ion.core.cc.container import Container
from ion.core.config import DEFAULTS, Config
from ion.core.messaging import message as m
from ion.core.process.process import Process
from ion.core.process.service import ServiceProcess
from tests.helpers import wait_for

POLICY = """
default: deny
users: {alice: [cc.admin, operator], bob: [operator]}
services:
  hello: {hello: [operator], ping: []}
  cc_agent: {get_info: []}
"""


class Hello(ServiceProcess):
    service_name = "hello"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.ran: list[tuple[str, Any]] = []

    def op_hello(self, content: Any, headers: dict, msg: m.Message) -> Any:
        self.ran.append(("hello", headers.get(m.USER_ID)))
        return f"Hello there, {content}"

    def op_ping(self, content: Any, headers: dict, msg: m.Message) -> Any:
        return "pong"

    def op_reset(self, content: Any, headers: dict, msg: m.Message) -> Any:
        self.ran.append(("reset", headers.get(m.USER_ID)))
        return "reset"


def policy_config(tmp_path: Path, text: str = POLICY) -> Config:
    path = tmp_path / "policy.yml"
    path.write_text(text)
    return Config(DEFAULTS).merged({"security": {"policy": str(path)}})


async def refused(call: Any) -> BaseException:
    """The error C{call} fails with, rebuilt as the caller's side does (an error
    ion knows comes back as itself, L{exc.rebuilt})."""
    with pytest.raises(exc.ReceivedApplicationError) as info:
        await wait_for(call)
    return exc.rebuilt(info.value)


async def setup(
    make_container: Callable[..., Awaitable[Container]], tmp_path: Path
) -> tuple[Container, Hello, Process]:
    container = await make_container(config=policy_config(tmp_path))
    service = await container.spawn(Hello)
    caller = await container.spawn(Process, name="caller")
    return container, service, caller


@pytest_twisted.ensureDeferred
async def test_anonymous_call_to_an_op_that_needs_a_role_is_a_401(
    make_container: Any, tmp_path: Path
) -> None:
    _container, service, caller = await setup(make_container, tmp_path)
    error = await refused(caller.rpc_send("hello", "hello", "you"))
    assert isinstance(error, exc.Unauthorized) and error.code == 401
    assert str(error) == "hello.hello needs a user-id with a role: operator"
    assert service.ran == []


@pytest_twisted.ensureDeferred
async def test_a_user_with_the_role_is_served_and_one_without_is_a_403(
    make_container: Any, tmp_path: Path
) -> None:
    _container, service, caller = await setup(make_container, tmp_path)
    caller.user_id = "bob"
    assert await wait_for(caller.rpc_send("hello", "hello", "bob")) == "Hello there, bob"
    assert service.ran == [("hello", "bob")]
    caller.user_id = "mallory"
    error = await refused(caller.rpc_send("hello", "hello", "m"))
    assert isinstance(error, exc.Forbidden) and error.code == 403
    assert "user 'mallory' has none of the roles hello.hello needs: operator" in str(error)
    assert await wait_for(caller.rpc_send("hello", "ping")) == "pong"  # []: anyone


@pytest_twisted.ensureDeferred
async def test_an_unlisted_op_under_default_deny_is_a_403_even_for_an_admin(
    make_container: Any, tmp_path: Path
) -> None:
    _container, service, caller = await setup(make_container, tmp_path)
    caller.user_id = "alice"
    error = await refused(caller.rpc_send("hello", "reset"))
    assert isinstance(error, exc.Forbidden) and "hello.reset is not in the policy" in str(error)
    assert service.ran == []


@pytest_twisted.ensureDeferred
async def test_the_request_protocol_is_judged_too(make_container: Any, tmp_path: Path) -> None:
    _container, service, caller = await setup(make_container, tmp_path)
    assert isinstance(await refused(caller.request("hello", "hello", "you")), exc.Unauthorized)
    caller.user_id = "bob"
    assert await wait_for(caller.request("hello", "hello", "b")) == "Hello there, b"


@pytest_twisted.ensureDeferred
async def test_an_expired_request_is_refused_with_a_401_and_not_run(
    make_container: Any, tmp_path: Path
) -> None:
    """Its caller may still wait (its clock behind the server's): it hears why at once."""
    container, service, caller = await setup(make_container, tmp_path)
    caller.user_id = "bob"
    past = int((container.reactor.seconds() - 60) * 1000)
    error = await refused(caller.rpc_send("hello", "hello", "late", headers={m.EXPIRY: past}))
    assert isinstance(error, exc.Unauthorized) and "expired" in str(error)
    assert service.ran == []
    assert container.policy is not None
    assert container.policy.counts[("hello", "hello", "expired")] == 1


@pytest_twisted.ensureDeferred
async def test_a_refusal_with_no_reply_to_is_dropped_and_counted(
    make_container: Any, tmp_path: Path
) -> None:
    container, service, caller = await setup(make_container, tmp_path)
    headers = {m.SENDER: "nobody", m.RECEIVER: "hello", m.CONV_ID: "c#1", m.PROTOCOL: "rpc",
               m.PERFORMATIVE: "request", m.OP: "hello"}  # fmt: skip
    await container.exchange.publish("hello", m.encode(headers, "x"))
    # The service queue is first in, first out: once this is answered, that was judged.
    assert await wait_for(caller.rpc_send("hello", "ping")) == "pong"
    assert container.policy is not None and container.policy.unanswered == 1
    assert service.ran == [] and service.state == "ACTIVE"


@pytest_twisted.ensureDeferred
async def test_decisions_are_counted_per_service_op_and_decision_in_get_info(
    make_container: Any, tmp_path: Path
) -> None:
    container, _service, caller = await setup(make_container, tmp_path)
    assert isinstance(await refused(caller.rpc_send("hello", "hello", "x")), exc.Unauthorized)
    caller.user_id = "bob"
    for _ in range(2):
        await wait_for(caller.rpc_send("hello", "hello", "x"))
    assert isinstance(await refused(caller.rpc_send("hello", "reset")), exc.Forbidden)
    info = await wait_for(agent_client.get_info(caller, container.id))
    policy = info["policy"]
    assert policy["default"] == "deny" and policy["file"].endswith("policy.yml")
    rows = {(r["service"], r["op"], r["decision"]): r["count"] for r in policy["decisions"]}
    assert rows[("hello", "hello", "unauthenticated")] == 1
    assert rows[("hello", "hello", "allow")] == 2
    assert rows[("hello", "reset", "forbidden")] == 1
    assert rows[("cc_agent", "get_info", "allow")] == 1


@pytest_twisted.ensureDeferred
async def test_with_no_policy_everything_is_allowed_and_get_info_says_none(
    container: Container,
) -> None:
    await container.spawn(Hello)
    caller = await container.spawn(Process, name="caller")
    assert await wait_for(caller.rpc_send("hello", "reset")) == "reset"
    info = await wait_for(agent_client.get_info(caller, container.id))
    assert container.policy is None and info["policy"] is None


@pytest_twisted.ensureDeferred
async def test_a_one_off_message_is_judged_too_and_dropped_unanswered(
    make_container: Any, tmp_path: Path
) -> None:
    """A one-off send runs its op's handler as a call does: it is no way round the policy."""
    container, service, caller = await setup(make_container, tmp_path)
    await wait_for(caller.send("hello", "hello", "sneaky"))
    assert await wait_for(caller.rpc_send("hello", "ping")) == "pong"  # after it, in order
    assert service.ran == []
    assert container.policy is not None and container.policy.unanswered == 1
    assert container.policy.counts[("hello", "hello", "unauthenticated")] == 1
    caller.user_id = "bob"
    await wait_for(caller.send("hello", "hello", "fine"))
    assert await wait_for(caller.rpc_send("hello", "ping")) == "pong"
    assert service.ran == [("hello", "bob")]


@pytest_twisted.ensureDeferred
async def test_the_shell_info_names_the_policy_and_its_counts(
    make_container: Any, tmp_path: Path
) -> None:
    from ion.core.cc.shell_api import ShellApi

    container, _service, caller = await setup(make_container, tmp_path)
    assert isinstance(await refused(caller.rpc_send("hello", "hello", "x")), exc.Unauthorized)
    line = f"policy {tmp_path / 'policy.yml'} (default deny): 0 allowed, 1 refused"
    assert line in str(ShellApi(container).info())


@pytest_twisted.ensureDeferred
async def test_the_shell_info_says_when_there_is_no_policy(container: Container) -> None:
    from ion.core.cc.shell_api import ShellApi

    assert "policy: none (every request allowed)" in str(ShellApi(container).info())
