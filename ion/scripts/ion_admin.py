"""ion-admin: set up (and tear down) an ion system on RabbitMQ with broker-proven containers.

    ion-admin setup SYSNAME --container NAME [--container NAME ...] [--observer NAME]
                    [--url amqp://host:port] [--out DIR] [--node NODE] [--rabbitmqctl PATH]
    ion-admin teardown SYSNAME [--node NODE] [--rabbitmqctl PATH]

C{setup} makes the vhost SYSNAME, a broker user per container (or app) and one for
the observer, each with a generated password and the permissions of
L{ion.admin.grants}, and writes C{DIR/<user>.yml} (mode 0600) for
C{twistd cc --config DIR/<user>.yml}. Passwords are written there only: never
printed, logged, or put on a command line. C{teardown} deletes the vhost (its
queues and exchanges) and the system's users.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

from ion.admin.rabbitmqctl import AdminError, Rabbitmqctl
from ion.admin.system import Plan, checked_sysname, setup, teardown
from ion.core.exception import ConfigurationError

EX_OK, EX_FAILED, EX_USAGE = 0, 1, 64


class Usage(Exception):
    """A usage error: exit 64 with the message."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise Usage(message)


def _parser(prog: str) -> _Parser:
    parser = _Parser(prog=prog, description="Set up an ion system on RabbitMQ.")
    common = _Parser(add_help=False)
    common.add_argument("--node", help="the RabbitMQ node (rabbitmqctl -n; default: its own)")
    common.add_argument("--rabbitmqctl", default="rabbitmqctl", help="rabbitmqctl's path")
    common.add_argument("--vhost", help="the system's vhost (default: SYSNAME)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    make = sub.add_parser("setup", parents=[common], help="make the vhost and users")
    make.add_argument("sysname", metavar="SYSNAME")
    make.add_argument("--container", action="append", default=[], metavar="NAME",
                      help="a container (or app) broker user; repeat for each")  # fmt: skip
    make.add_argument("--observer", metavar="NAME", help="the observer's user (binds #)")
    make.add_argument("--url", default="amqp://127.0.0.1:5672",
                      help="the broker as containers reach it, amqp[s]://host:port")  # fmt: skip
    make.add_argument("--out", default=".", help="where the users' config files go")
    drop = sub.add_parser("teardown", parents=[common], help="delete the vhost and users")
    drop.add_argument("sysname", metavar="SYSNAME")
    return parser


def main(
    argv: list[str] | None = None, prog: str = "ion-admin", env: Mapping[str, str] | None = None
) -> int:
    """Run ion-admin; return the exit status (C{env}: rabbitmqctl's environment)."""
    parser = _parser(prog)
    try:
        args = parser.parse_args(argv)
        plan = None
        if args.command == "setup":
            plan = Plan(args.sysname, args.container, args.observer, args.url, args.vhost or "")
        else:
            checked_sysname(args.sysname)
    except (Usage, ConfigurationError) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        parser.print_usage(sys.stderr)
        return EX_USAGE
    ctl = Rabbitmqctl(args.rabbitmqctl, args.node, env)
    try:
        if plan is not None:
            files = setup(ctl, plan, Path(args.out))
            print(f"system {plan.sysname}: vhost {plan.vhost}; config files (mode 0600):")
            for user, path in files.items():
                role = "observer" if user == plan.observer else "container"
                print(f"    {role} {user}: {path}")
        else:
            users = teardown(ctl, args.sysname, args.vhost)
            print(f"system {args.sysname}: vhost and users {', '.join(users) or '(none)'} deleted")
    except (AdminError, ConfigurationError, OSError) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return EX_FAILED
    return EX_OK


if __name__ == "__main__":
    sys.exit(main())
