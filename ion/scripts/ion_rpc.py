"""ion-rpc: call a service of a running system once, from the command line.

    ion-rpc [--broker URL] [-s SYSNAME] [--timeout S] [--import MODULE] SERVICE OP [CONTENT]
    ion-rpc [options] --container CID OP [CONTENT]
    ion-rpc --attach SOCKET [--timeout S] SERVICE OP [CONTENT]
    ion-rpc -s lab hello hello '"you"'          -> {"value": "Hello there, you"}
    ion-rpc -s lab --timeout 2 hello ping && echo up
    ion-rpc -s lab --container host_4242 get_info
    ion-rpc --attach ./cc.sock hello hello '"you"'

C{--container CID} (C{-c}) calls container CID's agent (its routing key is
C{cc.<CID>}, so C{ion-rpc -s lab cc.host_4242 ping} is the same call): ops
C{ping}, C{get_info}, C{spawn}, C{terminate} and C{kill}.

With C{--attach SOCKET} the call is made by the container serving that
C{--manhole} socket, from its shell's process, on whatever broker it runs
(the embedded one too); the socket, and the process serving it, must be this
user's or root's, as for ion-shell (L{ion.core.cc.attach}). Without it:

CONTENT is YAML (so JSON too; C{-} reads it from stdin; none sends null).
It must make a message: a value msgpack cannot carry (an unquoted date such
as 2020-01-01, a !!set) is a usage error, and so is a YAML alias, since a few
lines of them can expand to more than any broker takes. The reply content is
printed as JSON on stdout; bytes in it are printed as base64 strings,
protobuf objects as their JSON mapping, and anything else JSON cannot hold as
its repr. A reply holding a protobuf type of a project's own is read with the
module that registers it: C{--import MODULE} (repeatable) imports it first,
found where installed or in the working directory.

Exit status: 0 the reply was OK; 1 the service answered with an error (its
message on stderr); 2 no answer: the call timed out, nobody serves SERVICE in
SYSNAME, nothing runs as SYSNAME, the broker could not be reached, or it
refused the request (too large, say), or (C{--attach}) no container of this
user serves SOCKET; 3 the service answered (the call was made) but its reply
cannot be read: it holds an object type no imported module registers; 64 usage error, including C{--broker
local}: the embedded broker lives inside one container process, so there is
nothing another process could reach (C{--attach} its manhole socket instead).

The broker is C{--broker}, else the configuration's C{broker.url} (ion.yml,
ionlocal.yml, C{ION_BROKER__URL}), else amqp://127.0.0.1:5672/. Credentials
belong in C{--broker_credfile FILE} ("user:password", as twistd cc's) or the
environment (C{ION_BROKER__USERNAME}, C{ION_BROKER__PASSWORD}), not in the
URL, where C{ps} shows them; they are never printed. The sysname is C{-s},
else the configuration's C{sysname}. A tiny container with a unique id makes
the call and is gone after it (its mailbox queue with it). It starts only once
the system's exchange C{ion.<SYSNAME>} is found to exist, so a call into a
system that does not run leaves no exchanges behind. The request is published
with a broker confirm, so one the broker refuses fails the call at once. Its
C{user-id} is the broker user it logged in as (there is no option to claim
another: a policy, C{security.policy}, trusts that name); with C{--attach} it is
the container's shell user (C{shell.user}, else the OS user running it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from typing import Any, NoReturn

from ion.core.cc.attach import EX_NO_ANSWER, EX_OK, EX_USAGE, to_json

__all__ = ["main", "to_json"]
DEFAULT_BROKER = "amqp://127.0.0.1:5672/"


class Usage(Exception):
    """A usage error: exit 64 with the message."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise Usage(message)


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="ion-rpc",
        usage=(
            "%(prog)s [options] SERVICE OP [CONTENT]\n"
            "       %(prog)s [options] --container CID OP [CONTENT]"
        ),
        description="Call SERVICE's operation OP once; print the reply content as JSON.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            'credentials: --broker_credfile FILE ("user:password"), or ION_BROKER__USERNAME\n'
            "  and ION_BROKER__PASSWORD in the environment; not in --broker, where ps shows them\n"
            "container agents: --container CID OP calls container CID's agent (routing key\n"
            "  cc.CID): ping, get_info, spawn {module: 'pkg.mod:Class'} (if its\n"
            "  agent.spawn_allow allows), terminate {pid: ...}, kill {pid: ...}\n"
            "exit status: 0 OK, 1 error reply, 2 no answer (timeout, no such service or\n"
            "  system, broker unreachable or refusing the request), 64 usage"
        ),
    )
    p.add_argument(
        "--broker",
        metavar="URL",
        help="amqp[s]://host:port/vhost of the system (credentials: see --broker_credfile)",
    )
    p.add_argument(
        "--broker_credfile",
        metavar="FILE",
        help='a file holding the broker credentials as "user:password" (as twistd cc\'s)',
    )
    p.add_argument("-s", "--sysname", help="the system to call into")
    p.add_argument(
        "--attach",
        metavar="SOCKET",
        help="call through the --manhole SOCKET of a container (this user's), on any broker",
    )
    p.add_argument(
        "-c",
        "--container",
        metavar="CID",
        help="call container CID's agent (cc.CID); then give OP [CONTENT], no SERVICE",
    )
    p.add_argument(
        "--timeout", metavar="S", type=float, default=10.0, help="seconds to wait (default 10)"
    )
    p.add_argument(
        "--import",
        dest="imports",
        metavar="MODULE",
        action="append",
        default=[],
        help="import MODULE first (it registers the object types of the replies); repeatable",
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", help="log the container's work to stderr"
    )
    p.add_argument("service", nargs="?", help="service name or process id (not with --container)")
    p.add_argument("op", help="operation")
    p.add_argument("content", nargs="?", help="YAML/JSON content; - reads stdin")
    return p


def addressed(args: argparse.Namespace) -> argparse.Namespace:
    """C{args} with C{service} set: the one given, or C{cc.<CID>} for C{--container}
    (whose positionals are OP [CONTENT]).

    @raise Usage: no SERVICE without --container, or one with it.
    """
    if not args.container:
        if args.service is None:
            raise Usage("the following arguments are required: op")
        return args
    from ion.core.id import InvalidNameError, check_name

    if args.content is not None:
        raise Usage(f"--container {args.container}: give OP [CONTENT], not a SERVICE as well")
    try:
        check_name(args.container, "--container")
    except InvalidNameError as e:
        raise Usage(str(e)) from None
    if args.service is not None:  # OP and CONTENT were taken for SERVICE and OP
        args.op, args.content = args.service, args.op
    args.service = f"cc.{args.container}"  # ion.core.cc.agent_wire.agent_key (no Twisted here)
    return args


def settings(args: argparse.Namespace) -> tuple[dict[str, str], str, Any]:
    """The broker settings (C{url}, and C{ca}/C{cert}/C{key} for amqps), sysname and
    content the arguments (and configuration) ask for."""

    from ion.core.config import Config, config_layers, merge
    from ion.core.exception import ConfigurationError
    from ion.core.messaging.connect import TLS_FILES, amqp_parameters, broker_url

    if args.broker == "local":
        raise Usage(
            "--broker local: the embedded broker lives inside one container process; there is "
            "nothing to reach from here. Give the URL of the RabbitMQ the system runs on, or "
            "call through the container's --manhole socket: --attach SOCKET."
        )
    if not args.timeout > 0:
        raise Usage(f"--timeout {args.timeout}: must be more than 0 seconds")
    try:
        data: dict[str, Any] = {}
        for _name, layer in config_layers(root=os.getcwd(), environ=os.environ):
            data = merge(data, layer)
        config = Config(data)
        if args.broker:
            config = config.merged({"broker": {"url": args.broker}})
        elif config.get("broker.url", "local") == "local":
            config = config.merged({"broker": {"url": DEFAULT_BROKER}})
        if args.broker_credfile:
            from ion.core.cc.tap import read_credfile

            config = config.merged({"broker": read_credfile(args.broker_credfile)})
        url = broker_url(config)
        if not url.startswith(("amqp://", "amqps://")):
            raise Usage(f"--broker: expected amqp:// or amqps://, not {url.split('://')[0]!r}")
        amqp_parameters(config)  # a bad URL or TLS file is a usage error
    except ConfigurationError as e:
        raise Usage(str(e)) from None
    broker = {"url": url}
    broker.update(
        {k: str(config.get(f"broker.{k}")) for k in TLS_FILES if config.get(f"broker.{k}")}
    )
    sysname = args.sysname or config.get("sysname")
    if not sysname:
        raise Usage("no sysname: give -s SYSNAME (the -s the containers run with)")
    text = sys.stdin.read() if args.content == "-" else args.content
    return broker, str(sysname), load_content(text)


def import_modules(names: list[str]) -> None:
    """Import each module named (a project's object types register on import).

    @raise Usage: one cannot be imported; names which and why.
    """
    import importlib

    if names and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # a project's package, run from its directory
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as e:
            raise Usage(f"--import {name}: cannot import it: {type(e).__name__}: {e}") from None


def load_content(text: str | None) -> Any:
    """CONTENT parsed as YAML, once it is known to make a message.

    @raise Usage: it is not YAML, uses an alias, or holds what msgpack cannot carry.
    """
    import yaml

    from ion.core.exception import MessageFormatError
    from ion.core.messaging.message import encode
    from ion.core.safe_yaml import YAMLRefused, load_yaml

    if text is None:
        return None
    try:
        content = load_yaml(text)
    except YAMLRefused as e:
        # A few aliases of aliases expand to more than any broker takes.
        raise Usage(f"CONTENT is refused: {e.problem} (write the value out)") from None
    except yaml.YAMLError as e:
        raise Usage(f"CONTENT is not YAML or JSON: {str(e).splitlines()[0]}") from None
    try:
        encode({}, content)
    except MessageFormatError as e:
        raise Usage(
            f"CONTENT cannot be sent: {e.__cause__ or e} (a message holds null, booleans, "
            "numbers, strings, bytes, lists and maps; quote a date to send it as a string)"
        ) from None
    return content


async def call(
    reactor: Any, args: argparse.Namespace, broker: dict[str, str], sysname: str, content: Any
) -> int:
    """Make the call from a tiny container; print the outcome; the exit status."""
    from ion.core import exception as exc
    from ion.core.cc.attach import one_call
    from ion.core.cc.container import Container
    from ion.core.config import DEFAULTS, Config
    from ion.core.log import redact_text, redact_url
    from ion.core.process.process import Process
    from ion.core.security.identity import broker_user

    where, url = f"{args.service}.{args.op}", broker["url"]
    config = Config(DEFAULTS).merged(
        {
            "broker": {**broker, "connect_attempts": 1},
            "container": {"rpc_timeout": args.timeout},
            "agent": {"enabled": False},  # a caller for a moment, not a member of the system
        }
    )
    cid = f"ion-rpc-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    try:
        container = Container(reactor=reactor, config=config, container_id=cid, sysname=sysname)
    except exc.IonError as e:
        raise Usage(redact_text(str(e))) from None
    try:
        try:
            # Connected before the container starts, because starting declares the
            # system's exchanges: a sysname where nothing runs must not get them.
            await container.exchange.broker.connect()
        except exc.IonError as e:
            print(
                f"ion-rpc: cannot reach {redact_url(url)}: {redact_text(str(e))}", file=sys.stderr
            )
            return EX_NO_ANSWER
        if not await container.exchange.broker.exchange_exists(container.exchange.exchange_name):
            print(
                f"ion-rpc: {where}: no system {sysname!r} at {redact_url(url)}: "
                f"its exchange {container.exchange.exchange_name} does not exist",
                file=sys.stderr,
            )
            return EX_NO_ANSWER
        container.exchange.confirm_mandatory = True  # a refused request fails at once
        await container.start()
        proc = await container.spawn(Process, name="ion-rpc")
        # Its calls carry the broker user it logged in as, never a name given on
        # the command line: a policy's roles are only as good as this name.
        proc.user_id = broker_user(config)
        system = f"system {sysname!r} at {redact_url(url)}"
        status, payload = await one_call(proc, args.service, args.op, content, args.timeout, system)
        return _print_outcome(status, payload)
    finally:
        await container.stop()
        await container.exchange.broker.close()  # when the container never started


def _print_outcome(status: int, payload: Any) -> int:
    """Print a call's outcome (the reply as JSON on stdout, else why on stderr); C{status}."""
    if status == EX_OK:
        print(json.dumps(payload, ensure_ascii=False))
    else:
        print(f"ion-rpc: {payload}", file=sys.stderr)
    return status


def attached(args: argparse.Namespace) -> int:
    """The call through the manhole socket C{--attach}: no broker, no Twisted here."""
    from ion.core.cc.attach import AttachError, call

    for given, name in (
        (args.broker, "--broker"),
        (args.broker_credfile, "--broker_credfile"),
        (args.sysname, "-s"),
        (args.imports, "--import"),
    ):
        if given:
            raise Usage(
                f"{name}: not with --attach (the container's own broker, system and "
                "object types serve)"
            )
    if not args.timeout > 0:
        raise Usage(f"--timeout {args.timeout}: must be more than 0 seconds")
    content = load_content(sys.stdin.read() if args.content == "-" else args.content)
    try:
        status, payload = call(args.attach, args.service, args.op, content, args.timeout)
    except AttachError as e:
        print(f"ion-rpc: {e}", file=sys.stderr)
        return EX_NO_ANSWER
    if status == EX_USAGE:  # the container found the request malformed
        payload = f"the container refused the request: {payload}"
    return _print_outcome(status, payload)


def main(argv: list[str] | None = None) -> int:
    """Run ion-rpc; return the exit status."""
    try:
        args = addressed(parser().parse_args(argv))
        if args.attach:
            return attached(args)
        import_modules(args.imports)
        broker, sysname, content = settings(args)
    except Usage as e:
        print(f"ion-rpc: {e}", file=sys.stderr)
        parser().print_usage(sys.stderr)
        return EX_USAGE
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred
    from twisted.logger import globalLogBeginner

    from ion.core.config import Config
    from ion.core.log import make_observer

    # ion-rpc says what went wrong itself; the container's log only with -v.
    observer = make_observer(Config({"logging": {"level": "info"}}), sys.stderr)
    globalLogBeginner.beginLoggingTo(
        [observer if args.verbose else lambda event: None], redirectStandardIO=False
    )
    outcome: list[Any] = []

    def run() -> None:
        d = Deferred.fromCoroutine(call(reactor, args, broker, sysname, content))
        d.addBoth(outcome.append)
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(run)
    reactor.run()
    result = outcome[0] if outcome else EX_NO_ANSWER
    if isinstance(result, int):
        return result
    error = getattr(result, "value", result)
    if isinstance(error, Usage):
        print(f"ion-rpc: {error}", file=sys.stderr)
        return EX_USAGE
    from ion.core.log import redact_text

    print(f"ion-rpc: failed: {redact_text(repr(error))}", file=sys.stderr)
    return EX_NO_ANSWER


if __name__ == "__main__":
    sys.exit(main())
