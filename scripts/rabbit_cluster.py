#!/usr/bin/env python3
"""Start or stop a RabbitMQ cluster of three nodes on 127.0.0.1 for trying ion on
a cluster, with the machinery of the test suite (tests/rabbit_cluster.py,
tests/rabbit_node.py; this script puts the repository on sys.path to import it).

    scripts/rabbit_cluster.py start [--dir D] [--size N]
        boots the nodes, joins them, prints their AMQP URLs and node names and
        leaves them running; their data, logs and a state file (cluster.json)
        go under D (a new temporary directory, printed, by default)
    scripts/rabbit_cluster.py stop --dir D
        stops the nodes started with that D and removes what was under it

Needs RabbitMQ installed (/usr/lib/rabbitmq/bin); the nodes have unique names
and ports the OS hands out, and leave the broker at 127.0.0.1:5672 alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.rabbit_cluster import RabbitCluster  # noqa: E402
from tests.rabbit_node import NodeStartError, halt  # noqa: E402

STATE = "cluster.json"


def start(directory: Path | None, size: int) -> int:
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="ion-rabbit-cluster-"))
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / STATE).exists():
        print(f"{directory / STATE} exists: stop that cluster first", file=sys.stderr)
        return 1
    cluster = RabbitCluster(size, parent=directory, supervised=False)
    try:
        cluster.start()
    except NodeStartError as e:
        print(f"the cluster did not start: {e}", file=sys.stderr)
        return 1
    nodes = [
        {"name": n.name, "url": n.url, "home": str(n.home), "dist_port": n.dist_port}
        for n in cluster.members
    ]
    (directory / STATE).write_text(json.dumps({"nodes": nodes}, indent=2) + "\n")
    for node in nodes:
        print(f"{node['url']}  {node['name']}")
    print(f"formed in {cluster.formation_seconds:.1f}s; stop it with:")
    print(f"  {sys.argv[0]} stop --dir {directory}")
    return 0


def stop(directory: Path) -> int:
    state = directory / STATE
    try:
        nodes = json.loads(state.read_text())["nodes"]
    except (OSError, ValueError, KeyError) as e:
        print(f"no cluster state in {directory}: {e}", file=sys.stderr)
        return 1
    for node in nodes:
        halt(node["name"], Path(node["home"]))
        print(f"stopped {node['name']}")
    state.unlink()
    try:
        directory.rmdir()
    except OSError:
        pass  # not empty: something else is in it
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_start = sub.add_parser("start", help="start a cluster and leave it running")
    p_start.add_argument(
        "--dir", type=Path, help="directory for its state (default: a new temp dir)"
    )
    p_start.add_argument("--size", type=int, default=3, help="number of nodes (default 3)")
    p_stop = sub.add_parser("stop", help="stop the cluster started with --dir")
    p_stop.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "start":
        return start(args.dir, args.size)
    return stop(args.dir)


if __name__ == "__main__":
    sys.exit(main())
