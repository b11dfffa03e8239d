"""ion-init DIR (or C{python -m ion init DIR}): write a new ion project into DIR.

    ion-init greeter && cd greeter
    pip install -e '.[test]'
    twistd -n cc res/deploy/greeter.rel                      # run it
    python -m pytest && python -m twisted.trial tests_trial  # test it

The project is a package named after DIR (or C{--name}) holding one service
and its client, the service's C{.app} and a C{.rel} that starts it, a
pyproject.toml depending on ion, pytest and trial tests that pass as written,
and a README.txt saying how to run and test it. Nothing is written over: DIR
must be new or empty.

Exit status: 0 written; 1 DIR is not empty or cannot be written; 64 usage (a
name that is not a Python identifier, or one that would hide a module).
"""

from __future__ import annotations

import argparse
import keyword
import re
import sys
from pathlib import Path
from string import Template
from typing import NoReturn

EX_OK, EX_FAILED, EX_USAGE = 0, 1, 64
_TAKEN = frozenset({"ion", "twisted", "tests", "test", "conftest", "setup"})

README = """\
$name -- an ion project
$rule

One service, $name ($name/service.py: ${cls}Service and its ${cls}Client), the
app that runs it (res/apps/$name.app) and a release that starts it
(res/deploy/$name.rel), with its tests: tests/ for pytest, tests_trial/ for
trial. Install it into a virtualenv that has ion (pip install the ion wheel,
ion-$ion_release-py3-none-any.whl, or `pip install -e` an ion checkout, first: an
unrelated package on PyPI is also named ion), from this directory:

    pip install -e '.[test]'

Run it (a container with the service and its shell; Ctrl-D at the prompt
stops it, as SIGTERM does):

    twistd -n cc res/deploy/$name.rel

Test it:

    python -m pytest && python -m twisted.trial tests_trial

In the container's shell:

    from $name.service import ${cls}Client
    await ${cls}Client().greet("you")

ion's README.txt ("Your own project") says what each file is for.
"""

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "$name"
version = "0.1.0"
description = "an ion project: the $name service"
requires-python = ">=3.11"
dependencies = ["ion~=$ion_version"]

[project.optional-dependencies]
test = ["pytest>=8", "pytest-twisted>=1.14"]

[tool.setuptools.packages.find]
include = ["$name*"]

[tool.pytest.ini_options]
testpaths = ["tests"]
addopts = "-ra --strict-markers"
"""

SERVICE = '''\
"""The $name service and its client."""

from __future__ import annotations

from typing import Any

from ion.core.exception import BadRequest
from ion.core.process.service import ServiceClient, ServiceProcess


class ${cls}Service(ServiceProcess):
    """Answers greet(name) with a greeting; counts the greetings."""

    service_name = "$name"

    def on_init(self) -> None:
        self.greeted = 0

    def op_greet(self, content: Any, headers: dict[str, Any], msg: Any) -> dict[str, Any]:
        """Greet C{content}, a name."""
        if not isinstance(content, str) or not content:
            raise BadRequest(f"greet takes a name, not {content!r}")
        self.greeted += 1
        return {"greeting": f"Hello, {content}", "count": self.greeted}


class ${cls}Client(ServiceClient):
    """Calls the $name service."""

    targetname = "$name"

    async def greet(self, name: str) -> str:
        """The service's greeting for C{name}."""
        reply = await self.rpc_send("greet", name)
        return reply["greeting"]
'''

APP = """\
# The $name app: one ${cls}Service process. `applications:` are apps started
# in this container first; `needs: [service, ...]` would wait for services
# served anywhere in the system instead.
type: application
name: $name
version: "0.1"
description: the $name service
mod: [ion.core.pack.processapp, [$name, $name.service, ${cls}Service], {}]
registered: [$name]
applications: [ioncore]
"""

REL = """\
# Starts the $name app (after ioncore, which every container runs first).
#   twistd -n cc res/deploy/$name.rel
type: release
name: $name
version: "0.1"
description: the $name service
apps:
  - name: ioncore
  - name: $name
"""

CONFTEST = '''\
"""pytest must not collect the trial suite: run tests_trial with `python -m twisted.trial`."""

collect_ignore = ["tests_trial"]
'''

TEST_PYTEST = '''\
"""The $name service, offline (no broker) and in a container (embedded broker;
`python -m pytest --ion-broker=local,amqp` runs the container tests on RabbitMQ too)."""

from __future__ import annotations

import pytest
from $name.service import ${cls}Client, ${cls}Service

from ion.core.exception import BadRequest, ReceivedApplicationError
from ion.test import call_op, remote_error

IN_A_CONTAINER = pytest.mark.ion_container(rel="res/deploy/$name.rel")


async def test_greet_counts_greetings(ion_process_factory):
    """Offline: greet answers with the greeting and how many there were."""
    service = await ion_process_factory(${cls}Service)

    first = await call_op(service, "greet", "ann")
    second = await call_op(service, "greet", "bob")

    assert first.ok and first.content == {"greeting": "Hello, ann", "count": 1}
    assert second.content["count"] == 2


async def test_greet_without_a_name_is_a_bad_request(ion_process_factory):
    """Offline: an empty name is answered with a 400."""
    service = await ion_process_factory(${cls}Service)
    reply = await call_op(service, "greet", "")
    assert reply.error_code == 400


@IN_A_CONTAINER
async def test_the_client_greets_through_the_container(ion_container):
    """The release runs the service; its client calls it over the broker."""
    assert await ${cls}Client(container=ion_container).greet("world") == "Hello, world"


@IN_A_CONTAINER
async def test_an_error_reply_reaches_the_client(ion_container):
    """A bad request comes back to the caller as the error a faked client can raise too."""
    with pytest.raises(ReceivedApplicationError) as caught:
        await ${cls}Client(container=ion_container).greet("")
    expected = remote_error(BadRequest, "greet takes a name, not ''")
    assert (caught.value.code, caught.value.message) == (expected.code, expected.message)
'''

TEST_TRIAL = '''\
"""The $name service under trial, with ion's IonTestCase."""

from __future__ import annotations

from pathlib import Path

from $name.service import ${cls}Client

from ion.test.trial import IonTestCase


class ${cls}ReleaseTest(IonTestCase):
    """The release in a container."""

    root = Path(__file__).resolve().parents[1]  # the project, which holds res/

    async def setUp(self) -> None:
        await self._start_container(rel="res/deploy/$name.rel")

    async def tearDown(self) -> None:
        await self._stop_container()

    async def test_greet(self) -> None:
        """The client greets through the container."""
        greeting = await ${cls}Client(proc=self.test_sup).greet("trial")
        self.assertEqual(greeting, "Hello, trial")
        self.assertIsNotNone(self._get_procid("$name"))
'''

GITIGNORE = """\
__pycache__/
*.egg-info/
.pytest_cache/
_trial_temp/
twistd.pid
twistd.log*
"""

FILES = {
    "README.txt": README,
    ".gitignore": GITIGNORE,
    "pyproject.toml": PYPROJECT,
    "conftest.py": CONFTEST,
    "$name/__init__.py": '"""The $name ion project."""\n',
    "$name/service.py": SERVICE,
    "res/apps/$name.app": APP,
    "res/deploy/$name.rel": REL,
    "tests/__init__.py": "",
    "tests/test_service.py": TEST_PYTEST,
    "tests_trial/__init__.py": "",
    "tests_trial/test_service.py": TEST_TRIAL,
}


class Usage(Exception):
    """A usage error: exit 64 with the message."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise Usage(message)


def check_name(name: str) -> str:
    """C{name} if it can name the package and its service; L{Usage} if not."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or keyword.iskeyword(name):
        raise Usage(
            f"{name!r} cannot name the project's package: use lower-case letters, digits "
            "and _ (not first a digit), e.g. --name my_service"
        )
    if name in _TAKEN or name in sys.stdlib_module_names:
        raise Usage(f"{name!r} would hide the module of that name: choose another --name")
    return name


def project_files(name: str) -> dict[str, str]:
    """The project's files for package C{name}: path (relative) -> text."""
    import ion

    cls = "".join(part.capitalize() for part in name.split("_") if part) or "Project"
    values = {
        "name": name,
        "cls": cls,
        "ion_release": ion.__version__,
        "rule": "=" * len(f"{name} -- an ion project"),
        # ~= MAJOR.MINOR.0: this minor release line only, never PyPI's unrelated "ion"
        "ion_version": ".".join(ion.__version__.split(".")[:2]) + ".0",
    }
    return {
        Template(p).substitute(values): Template(t).substitute(values) for p, t in FILES.items()
    }


def write_project(directory: Path, name: str) -> list[Path]:
    """Write the project into C{directory} (new or empty); the files written.

    @raise FileExistsError: C{directory} holds something already.
    """
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise FileExistsError(f"{directory} exists and is not an empty directory")
    written = []
    for relative, text in project_files(name).items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as f:  # never over a file
            f.write(text)
        written.append(path)
    return written


def main(argv: list[str] | None = None, prog: str = "ion-init") -> int:
    """Run ion-init; return the exit status."""
    parser = _Parser(prog=prog, description="Write a new ion project into DIR.")
    parser.add_argument("dir", metavar="DIR", help="the project's directory (new or empty)")
    parser.add_argument("--name", help="the package and service name (default: DIR's name)")
    try:
        args = parser.parse_args(argv)
        directory = Path(args.dir)
        name = check_name(args.name or directory.resolve().name.replace("-", "_").lower())
    except Usage as e:
        print(f"{prog}: {e}", file=sys.stderr)
        parser.print_usage(sys.stderr)
        return EX_USAGE
    try:
        write_project(directory, name)
    except OSError as e:
        print(f"{prog}: {e.strerror + ': ' + str(e.filename) if e.strerror else e}",
              file=sys.stderr)  # fmt: skip
        return EX_FAILED
    print(f"wrote the {name} project in {directory}; next, from there:")
    print("    pip install -e '.[test]'")
    print(f"    twistd -n cc res/deploy/{name}.rel                      # run it")
    print("    python -m pytest && python -m twisted.trial tests_trial  # test it")
    return EX_OK


if __name__ == "__main__":
    sys.exit(main())
