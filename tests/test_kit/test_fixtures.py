"""The pytest fixtures: containers, apps, releases, processes, brokers and sysnames."""

from __future__ import annotations

import re

import pytest
import pytest_twisted
from twisted.internet import defer

from ion.services.hello.service import HelloServiceClient
from ion.test import IonKit, describe_process, unique_sysname

HELLO = {"name": "hello1", "module": "ion.services.hello.service", "class": "HelloService"}


@pytest_twisted.ensureDeferred
async def test_ion_container_runs_on_the_embedded_broker_by_default(
    ion_container, ion_broker, ion_kit, ion_sysname
):
    """Unmarked, the container runs on the embedded broker, in the test's own system."""
    assert ion_broker.kind == "local"
    assert ion_container.running
    assert ion_container.sysname == ion_kit.sysname == ion_sysname
    assert re.fullmatch(r"test-[0-9a-f]{8}", ion_sysname)
    assert [app.name for app in ion_container.apps()] == ["ioncore"]


def test_sysnames_are_unique():
    """Every call gives a new sysname."""
    assert len({unique_sysname() for _ in range(100)}) == 100


@pytest.mark.ion_container(rel="res/deploy/hello.rel")
@pytest_twisted.ensureDeferred
async def test_marker_starts_a_release(ion_container):
    """rel= starts the release, and its service answers."""
    assert [app.name for app in ion_container.apps()] == ["ioncore", "hello"]
    assert "you" in await HelloServiceClient(container=ion_container).hello("you")


@pytest.mark.ion_container(apps=["hello"], config={"container": {"rpc_timeout": 3.5}})
@pytest_twisted.ensureDeferred
async def test_marker_starts_apps_with_config(ion_container):
    """apps= starts apps by name; config= reaches the container's config."""
    assert ion_container.app_manager.is_running("hello")
    assert ion_container.config.get("container.rpc_timeout") == 3.5


@pytest.mark.ion_container(processes=[HELLO])
@pytest_twisted.ensureDeferred
async def test_marker_spawns_described_processes(ion_container, ion_kit):
    """processes= spawns the original's process descriptions, found by name."""
    proc = ion_container.proc_manager.find("hello1")
    assert proc is not None and proc.state == "ACTIVE"
    assert ion_kit.find("hello1") is proc
    assert ion_kit.find(str(proc.id)) is proc


@pytest_twisted.ensureDeferred
async def test_factory_containers_share_one_system(ion_container_factory, ion_kit):
    """Containers from the factory form one system: a call crosses from one to the other."""
    server = await ion_container_factory(apps=["hello"])
    caller = await ion_container_factory()

    greeting = await HelloServiceClient(container=caller).hello("across")

    assert greeting.endswith("across")
    assert server.sysname == caller.sysname and server.id != caller.id
    assert ion_kit.containers == [server, caller]


@pytest_twisted.ensureDeferred
async def test_factory_takes_an_app_file_path(ion_container_factory):
    """apps= also takes .app paths, relative to the project root."""
    container = await ion_container_factory(apps=["res/apps/hello.app"])
    assert container.app_manager.is_running("hello")


@pytest.mark.ion_broker("local")
def test_marker_names_the_broker(ion_broker):
    """@pytest.mark.ion_broker picks the broker."""
    assert str(ion_broker) == "local"


@pytest.mark.parametrize("ion_broker", ["local", "embedded"], indirect=True)
def test_broker_can_be_parametrized(ion_broker):
    """ion_broker can be parametrized indirectly; 'embedded' is another name for local."""
    assert ion_broker.kind == "local"


def test_process_descriptions():
    """Descriptions come as the original's dicts, 'target' dicts, strings or classes."""
    assert describe_process(HELLO) == (
        "ion.services.hello.service:HelloService",
        "hello1",
        {},
        None,
    )
    assert describe_process({"target": "m:C", "args": {"a": 1}})[2] == {"a": 1}
    assert describe_process("m:C") == ("m:C", None, {}, None)
    with pytest.raises(ValueError, match="module"):
        describe_process({"name": "x"})


@pytest_twisted.ensureDeferred
async def test_kit_refuses_to_start_after_stop():
    """A stopped kit starts no more containers."""
    kit = IonKit()
    await kit.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        await kit.start_container()


@pytest.mark.ion_container(apps=["hello"])
@pytest_twisted.ensureDeferred
async def test_a_client_with_no_arguments_finds_the_fixtures_container(ion_container):
    """HelloServiceClient() in a test using ion_container calls from that container."""
    client = HelloServiceClient()
    assert client.container is ion_container
    assert await client.hello("you") == "Hello there, you"


@pytest_twisted.inlineCallbacks
def test_an_inline_callbacks_test_finds_it_too(ion_container_factory):
    """The first container of the test is found, in an inlineCallbacks test as well."""
    first = yield defer.ensureDeferred(ion_container_factory(apps=["hello"]))
    yield defer.ensureDeferred(ion_container_factory())
    client = HelloServiceClient()
    assert client.container is first
    assert (yield defer.ensureDeferred(client.hello("you"))) == "Hello there, you"


@pytest_twisted.async_fixture
async def hello_client(ion_container):
    """A user's fixture over ion_container that makes a client with no arguments."""
    await ion_container.start_app("hello")
    return HelloServiceClient()


@pytest_twisted.async_yield_fixture
async def hello_reply(ion_container):
    """A user's yield fixture: the client is made, and used again at teardown, in place."""
    yield await HelloServiceClient().hello("setup")
    assert await HelloServiceClient().hello("teardown") == "Hello there, teardown"


@pytest_twisted.ensureDeferred
async def test_a_users_fixtures_find_the_container_too(ion_container, hello_client, hello_reply):
    """Fixtures of the test's own (plain and yield) that use ion_container find it as well."""
    assert hello_client.container is ion_container
    assert await hello_client.hello("you") == "Hello there, you"
    assert hello_reply == "Hello there, setup"
