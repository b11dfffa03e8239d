"""The container agent under a policy: its mutating ops (spawn, terminate, kill)
need the role cc.admin whenever a policy is set, whatever the file says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from ion.core import exception as exc
from ion.core.cc import agent_client
from ion.core.config import DEFAULTS, Config
from ion.core.process.process import Process
from tests.helpers import wait_for

# default allow: only the built-in rule stands between a caller and spawn.
POLICY = "default: allow\nusers: {alice: [cc.admin], bob: [operator]}\n"


class Echo(Process):
    def op_echo(self, content: Any, headers: dict[str, Any], msg: Any) -> Any:
        return content


@pytest_twisted.ensureDeferred
async def test_spawn_and_terminate_need_cc_admin(make_container: Any, tmp_path: Path) -> None:
    path = tmp_path / "policy.yml"
    path.write_text(POLICY)
    config = Config(DEFAULTS).merged(
        {
            "security": {"policy": str(path)},
            "agent": {"spawn_allow": ["tests.core.cc.test_agent_policy:*"]},
        }  # fmt: skip
    )
    container = await make_container(config=config)
    caller = await container.spawn(Process, name="caller")
    module, cid = "tests.core.cc.test_agent_policy:Echo", container.id

    with pytest.raises(exc.Unauthorized, match="cc_agent.spawn needs a user-id with a role: cc.admin"):  # fmt: skip
        await wait_for(agent_client.spawn_on(caller, cid, module, name="echo"))
    caller.user_id = "bob"
    with pytest.raises(exc.Forbidden, match="user 'bob' has none of the roles"):
        await wait_for(agent_client.spawn_on(caller, cid, module, name="echo"))
    assert container.proc_manager.find("echo") is None

    caller.user_id = "alice"
    pid = await wait_for(agent_client.spawn_on(caller, cid, module, name="echo"))
    assert await wait_for(caller.rpc_send(pid, "echo", 1)) == 1  # others' ops: default allow

    for user, error in ((None, exc.Unauthorized), ("bob", exc.Forbidden)):
        caller.user_id = user
        for kill in (False, True):
            with pytest.raises(error):
                await wait_for(agent_client.stop_remote(caller, pid, kill=kill))
    assert pid in container.proc_manager.processes

    caller.user_id = "alice"
    await wait_for(agent_client.stop_remote(caller, pid))
    assert pid not in container.proc_manager.processes
    caller.user_id = None
    info = await wait_for(agent_client.get_info(caller, cid))  # not mutating: allowed
    rows = {(r["op"], r["decision"]): r["count"] for r in info["policy"]["decisions"]
            if r["service"] == "cc_agent"}  # fmt: skip
    assert rows[("spawn", "unauthenticated")] == 1 and rows[("spawn", "forbidden")] == 1
    assert rows[("spawn", "allow")] == 1 and rows[("terminate", "allow")] == 1
    assert rows[("kill", "forbidden")] == 1 and rows[("get_info", "allow")] == 1
