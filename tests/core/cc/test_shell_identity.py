"""The shell's calls carry its user: C{shell.user}, else the OS user running the container."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted

from ion.core.cc.shell_api import ShellApi
from ion.core.config import DEFAULTS, Config
from ion.core.exception import ConfigurationError
from ion.core.messaging import message as m
from ion.core.process.process import Process
from ion.core.security.identity import os_user, shell_user
from tests.helpers import wait_for


class WhoAmI(Process):
    def op_whoami(self, content: Any, headers: dict, msg: Any) -> Any:
        return headers.get(m.USER_ID)


@pytest_twisted.ensureDeferred
async def test_the_shell_speaks_as_the_os_user_by_default(make_container: Any) -> None:
    container = await make_container()
    who = await container.spawn(WhoAmI, name="who")
    cc = ShellApi(container)
    assert cc.user == os_user() and os_user()
    assert await wait_for(cc.rpc_send("who", "whoami")) == os_user()
    proc = await cc.makeprocess()
    assert await wait_for(proc.rpc_send(who.id, "whoami")) == os_user()


@pytest_twisted.ensureDeferred
async def test_shell_user_names_it(make_container: Any) -> None:
    container = await make_container(config=Config(DEFAULTS).merged({"shell": {"user": "ops"}}))
    await container.spawn(WhoAmI, name="who")
    assert await wait_for(ShellApi(container).rpc_send("who", "whoami")) == "ops"


def test_a_shell_user_that_is_not_a_name_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="shell.user: expected a user name, not 3"):
        shell_user(Config({"shell": {"user": 3}}))
