"""ion-rpc's calls carry the broker user it logged in as: a container whose policy
gives that user a role serves it, and names it when it lacks one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.launch import launch_in_system, running
from tests.rabbit import URL, require_rabbitmq
from tests.scripts.test_ion_rpc import delete_system, ion_rpc

# The shared broker has one user, guest: it is the name the policy must see.
POLICY = """\
default: allow
users: {guest: [operator]}
services:
  hello: {hello: [operator], ping: [cc.admin]}
"""


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A headless twistd container on RabbitMQ serving hello under POLICY, in a unique sysname."""
    require_rabbitmq()
    sysname = f"t-rpcid-{uuid.uuid4().hex[:8]}"
    tmp = tmp_path_factory.mktemp("ion-rpc-id")
    policy, config, ready = tmp / "policy.yml", tmp / "extra.yml", tmp / "ready"
    policy.write_text(POLICY)
    config.write_text(f"security: {{policy: {str(policy)!r}}}\n")
    proc = launch_in_system("rpcid", URL, sysname, ready, "--config", str(config),
                            "res/deploy/hello.rel")  # fmt: skip
    try:
        with running(proc, ready):
            yield sysname
    finally:
        delete_system(sysname)


@pytest.mark.rabbitmq
def test_the_user_id_is_the_broker_login(system: str) -> None:
    done = ion_rpc("--broker", URL, "-s", system, "hello", "hello", '"you"')
    assert done.returncode == 0, done.stderr  # guest has operator
    done = ion_rpc("--broker", URL, "-s", system, "hello", "ping")
    assert done.returncode == 1 and done.stdout == ""
    assert "[403] Forbidden: user 'guest' has none of the roles hello.ping needs: cc.admin" in (
        done.stderr
    )


@pytest.mark.rabbitmq
def test_the_user_id_from_a_credentials_file_is_that_login(system: str, tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.write_text("guest:guest\n")
    url = URL.replace("guest:guest@", "")
    done = ion_rpc("--broker", url, "--broker_credfile", str(creds), "-s", system, "hello", "ping")
    assert done.returncode == 1 and "user 'guest' has none of the roles" in done.stderr


def test_there_is_no_option_to_claim_another_user() -> None:
    done = ion_rpc("--user", "admin", "-s", "x", "hello", "ping")
    assert done.returncode == 64 and "unrecognized arguments: --user" in done.stderr
