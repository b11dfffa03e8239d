#!/usr/bin/env python
"""Chaos run on RabbitMQ: broker links cut and service instances killed under load.

Real twistd containers (two ChaosEcho instances and a ChaosSink, see
scripts/chaos_services.py) and a client container in this process form one
system (a fresh sysname, deleted after). Every broker connection goes through
a TCP proxy (ion.test.proxy): one for the client, one for the services. While
rpc and send workers run, the client's and the services' links are cut
--cuts times each (alternately), and an echo instance is SIGKILLed mid-request
and restarted --kills times. Then it prints:

    calls  ok / failed with a clear error / hung / mismatched / run twice
    sends  confirmed / failed / lost (confirmed, never received) / duplicated

Targets: 0 hung, 0 mismatched, 0 confirmed-but-lost. A failed call or send is
fine when its error is clear (an IonError); one that fails otherwise is counted
apart. Bounded: --max-seconds ends the run early (with the counts so far).

    .venv/bin/python scripts/chaos.py [--cuts 100] [--kills 20] [--interval 0.4]
        [--rpc-workers 8] [--send-workers 2] [--rpc-timeout 10] [--max-seconds 300]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from twisted.internet import defer, task

from ion.core.exception import IonError

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
HOST, PORT = "127.0.0.1", 5672
_TWISTD = Path(sys.executable).parent / "twistd"
TWISTD = (
    [str(_TWISTD)]
    if _TWISTD.exists()
    else [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
)
BOOT_ECHO = "from chaos_services import ChaosEcho\nawait cc.spawn(ChaosEcho)\n"
BOOT_SINK = "from chaos_services import ChaosSink\nawait cc.spawn(ChaosSink)\n"


class Service:
    """One twistd container of the system, through the services' proxy."""

    def __init__(self, run: Run, tag: str, boot: str) -> None:
        self.run, self.tag, self.boot = run, tag, boot
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> Path:
        self.starts += 1
        tmp = self.run.tmp
        script = tmp / f"{self.tag}.py"
        script.write_text(self.boot)
        ready = tmp / f"{self.tag}-{self.starts}.ready"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ION_")}
        env.update(
            ION_BROKER__USERNAME="guest",
            ION_BROKER__PASSWORD="guest",
            PYTHONPATH=os.pathsep.join([str(SCRIPTS), env.get("PYTHONPATH", "")]),
        )
        cmd = [*TWISTD, "--pidfile=", "-n", "cc", "-n"]
        cmd += ["--container-id", f"{self.run.sysname}-{self.tag}-{self.starts}"]
        cmd += ["--broker", f"amqp://{HOST}:{self.run.service_proxy.port}/"]
        cmd += ["-s", self.run.sysname, "--ready-file", str(ready), str(script)]
        log = open(tmp / f"{self.tag}-{self.starts}.log", "wb")  # noqa: SIM115 - the child's
        self.proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return ready

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


class Run:
    def __init__(self, reactor: Any, args: argparse.Namespace) -> None:
        from ion.test.proxy import Proxy

        self.reactor, self.args = reactor, args
        self.sysname = f"chaos-{uuid.uuid4().hex[:8]}"
        self.tmp = Path(tempfile.mkdtemp(prefix="ion-chaos-"))
        self.client_proxy = Proxy(reactor, (HOST, PORT))
        self.service_proxy = Proxy(reactor, (HOST, PORT))
        self.services = [Service(self, "echo-a", BOOT_ECHO), Service(self, "echo-b", BOOT_ECHO)]
        self.sink = Service(self, "sink", BOOT_SINK)
        self.calls: Counter[str] = Counter()
        self.unclear: Counter[str] = Counter()
        self.clear: Counter[str] = Counter()
        self.sends: Counter[str] = Counter()
        self.confirmed: list[int] = []
        self.seq = 0
        self.loading = True
        self.client: Any = None
        self.container: Any = None

    async def wait_ready(self, ready: Path, service: Service, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while not ready.exists():
            if service.proc is not None and service.proc.poll() is not None:
                raise SystemExit(
                    f"{service.tag} exited with {service.proc.returncode}; see {self.tmp}"
                )
            if time.monotonic() > end:
                raise SystemExit(f"{service.tag} not ready after {timeout}s; see {self.tmp}")
            await task.deferLater(self.reactor, 0.05, lambda: None)

    async def start(self) -> None:
        from ion.core.cc.container import Container
        from ion.core.config import DEFAULTS, Config
        from ion.core.process.process import Process

        await self.client_proxy.start()
        await self.service_proxy.start()
        for service in [self.sink, *self.services]:
            await self.wait_ready(service.start(), service)
        url = f"amqp://guest:guest@{HOST}:{self.client_proxy.port}/"
        config = Config(DEFAULTS).merged(
            {"broker": {"url": url}, "container": {"rpc_timeout": self.args.rpc_timeout}}
        )
        self.container = Container(
            reactor=self.reactor,
            config=config,
            container_id=f"{self.sysname}-client",
            sysname=self.sysname,
        )
        await self.container.start()
        self.client = await self.container.spawn(Process, name="chaos_client")

    # -- load ----------------------------------------------------------------

    async def _outcome(self, d: defer.Deferred[Any], counts: Counter[str], what: str) -> Any:
        """C{d}'s result, or None once counted as hung or failed (and why)."""
        d.addTimeout(self.args.rpc_timeout + 5, self.reactor)  # past its own deadline: hung
        try:
            return await d
        except defer.TimeoutError:
            counts["hung"] += 1
        except IonError as e:
            counts["failed (clear error)"] += 1
            self.clear[f"{what}: {type(e).__name__}"] += 1
            await task.deferLater(self.reactor, 0.2, lambda: None)  # the link is down, say
        except Exception as e:
            counts["failed (unclear error)"] += 1
            self.unclear[f"{what}: {type(e).__name__}"] += 1
        return None

    async def rpc_worker(self) -> None:
        while self.loading:
            token = uuid.uuid4().hex
            d = self.client.rpc_send(
                "chaos_echo", "echo", {"token": token}, timeout=self.args.rpc_timeout
            )
            reply = await self._outcome(d, self.calls, "call")
            if reply is None:
                continue
            self.calls["ok" if reply.get("token") == token else "mismatched"] += 1

    async def send_worker(self) -> None:
        while self.loading:
            self.seq += 1
            seq = self.seq
            d = self.client.send("chaos_sink", "record", seq, timeout=self.args.rpc_timeout)
            d.addCallback(lambda _: True)
            if await self._outcome(d, self.sends, "send"):
                self.sends["confirmed"] += 1
                self.confirmed.append(seq)

    # -- chaos ---------------------------------------------------------------

    async def chaos(self, deadline: float) -> dict[str, int]:
        args = self.args
        steps = 2 * args.cuts
        kill_every = max(1, steps // args.kills) if args.kills else 0
        done = Counter()
        for step in range(steps):
            if time.monotonic() > deadline:
                print(f"--max-seconds reached after {step} of {steps} cuts", flush=True)
                break
            await task.deferLater(self.reactor, args.interval, lambda: None)
            if step % 2:
                self.service_proxy.cut()
                done["service link cuts"] += 1
            else:
                self.client_proxy.cut()
                done["client link cuts"] += 1
            if kill_every and step % kill_every == kill_every - 1 and done["kills"] < args.kills:
                victim = self.services[done["kills"] % len(self.services)]
                victim.kill()  # mid-request: the load keeps both instances busy
                victim.start()  # at once; it serves once booted
                done["kills"] += 1
        return done

    # -- the end -------------------------------------------------------------

    async def report(self) -> dict[str, Any]:
        """The sink's records, asked until the links are back (bounded)."""
        end = time.monotonic() + 60
        while True:
            try:
                return await self.client.rpc_send("chaos_sink", "report", None, timeout=10)
            except IonError:
                if time.monotonic() > end:
                    raise
                await task.deferLater(self.reactor, 0.5, lambda: None)

    async def cleanup(self) -> None:
        if self.container is not None:
            await self.container.stop()
        for service in [*self.services, self.sink]:
            service.stop()
        await self.client_proxy.stop()
        await self.service_proxy.stop()
        from ion.core.messaging.amqp import AmqpBroker

        cleaner = AmqpBroker(self.reactor, f"amqp://guest:guest@{HOST}:{PORT}/", reconnect=False)
        await cleaner.connect()
        try:
            for queue in ("chaos_echo", "chaos_sink"):
                await cleaner.delete_queue(f"{self.sysname}.{queue}")
            for exchange in (f"ion.{self.sysname}", f"ion.{self.sysname}.events"):
                await cleaner.delete_exchange(exchange)
        finally:
            await cleaner.close()


async def main(reactor: Any, args: argparse.Namespace) -> None:
    run = Run(reactor, args)
    started = time.monotonic()
    deadline = started + args.max_seconds
    try:
        await run.start()
        print(
            f"system {run.sysname}: 2 echo instances and a sink up; logs in {run.tmp}", flush=True
        )
        workers = [defer.ensureDeferred(run.rpc_worker()) for _ in range(args.rpc_workers)]
        workers += [defer.ensureDeferred(run.send_worker()) for _ in range(args.send_workers)]
        done = await run.chaos(deadline)
        await task.deferLater(reactor, 2, lambda: None)  # load on the links back
        run.loading = False
        await defer.DeferredList(workers)
        for service in run.services:  # the last restarted instance has booted by now
            if service.proc is not None and service.proc.poll() is not None:
                print(f"warning: {service.tag} exited with {service.proc.returncode}")
        report = await run.report()
    finally:
        await run.cleanup()
    records = Counter(report["records"])
    ran = Counter(report["ran"])
    lost = [s for s in run.confirmed if s not in records]
    print(f"\nchaos run: {done['client link cuts']} client link cuts, {done['service link cuts']} "
          f"service link cuts, {done['kills']} instances SIGKILLed mid-request and restarted, "
          f"in {time.monotonic() - started:.0f}s")  # fmt: skip
    c, s = run.calls, run.sends
    print(f"calls  ok {c['ok']}  failed with a clear error {c['failed (clear error)']}  "
          f"failed otherwise {c['failed (unclear error)']}  hung {c['hung']}  "
          f"mismatched {c['mismatched']}  duplicated (run twice by the service, redelivered "
          f"after a kill or cut) {sum(1 for n in ran.values() if n > 1)}")  # fmt: skip
    print(f"sends  confirmed {s['confirmed']}  failed with a clear error {s['failed (clear error)']}  "
          f"failed otherwise {s['failed (unclear error)']}  hung {s['hung']}  "
          f"lost (confirmed, never received) {len(lost)}  "
          f"duplicated {sum(1 for n in records.values() if n > 1)}  "
          f"(sent, not confirmed, received: {len(set(records) - set(run.confirmed))})")  # fmt: skip
    print(f"clear errors: {dict(sorted(run.clear.items()))}")
    if run.unclear:
        print(f"unclear errors: {dict(run.unclear)}")
    bad = c["hung"] + c["mismatched"] + s["hung"] + len(lost)
    print("targets (0 hung, 0 mismatched, 0 confirmed-but-lost):", "met" if not bad else "MISSED")
    if bad:
        raise SystemExit(f"targets missed; the containers' logs are in {run.tmp}")
    shutil.rmtree(run.tmp, ignore_errors=True)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cuts", type=int, default=100, help="cuts of each link (default 100)")
    p.add_argument("--kills", type=int, default=20, help="SIGKILLed instances (default 20)")
    p.add_argument("--interval", type=float, default=0.4, help="seconds between cuts")
    p.add_argument("--rpc-workers", type=int, default=8, help="calls in flight")
    p.add_argument("--send-workers", type=int, default=2, help="sends in flight")
    p.add_argument("--rpc-timeout", type=float, default=10.0, help="deadline of a call or send")
    p.add_argument("--max-seconds", type=float, default=300.0, help="the chaos ends by then")
    return p.parse_args(argv)


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, arguments)))
