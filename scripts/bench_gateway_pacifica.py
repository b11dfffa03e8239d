"""Pacifica Notifications 0.5.2 set up for bench_gateway.py, and taken down after.

Its own virtualenv (made once, in a cache directory, never in the repo):
pacifica-notifications 0.5.2 and psycopg2. Its database is PostgreSQL (its
SQLite setup fails under peewee 4): a schema of its own in the database C{test},
dropped afterwards. Its celery worker (concurrency 2, prefork) runs on RabbitMQ
with a queue and exchange of its own, deleted afterwards; a wrapper sets them,
since Pacifica's celery app takes only the broker URL from its config. What
would leave broker objects behind is off: remote control (its pidbox) and task
results (BACKEND_URL disabled: Pacifica never reads them, and the rpc backend's
reply queues would outlive the run by a day). Everything else is Pacifica's as
installed: its CherryPy server, its tasks, its policy query per match.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
VERSION = "0.5.2"
DEFAULT_VENV = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ion-bench" / "pacifica-venv"
)

# Runs in Pacifica's virtualenv: "server ARGS..." or "worker ARGS...".
WRAPPER = """\
import os, sys
from pacifica.notifications.tasks import CELERY_APP
q = os.environ["PACBENCH_QUEUE"]
CELERY_APP.conf.update(
    task_default_queue=q, task_default_exchange=q, task_default_routing_key=q,
    task_ignore_result=True, worker_enable_remote_control=False,
)
if sys.argv[1] == "server":
    from pacifica.notifications.__main__ import main
    main(*sys.argv[2:])
else:
    CELERY_APP.worker_main(["worker", *sys.argv[2:]])
"""

# CherryPy's config as Pacifica's own server.conf has it (MethodDispatcher), quiet.
CPCONFIG = """\
[global]
log.screen: False
engine.autoreload.on: False
[/]
request.dispatch: cherrypy.dispatch.MethodDispatcher()
tools.response_headers.on: True
tools.response_headers.headers: [('Content-Type', 'application/json')]
"""


def ensure_venv(venv: Path) -> Path:
    """Pacifica's virtualenv at C{venv}, made if missing; its python."""
    python = venv / "bin" / "python"
    if not (venv / "bin" / "pacifica-notifications").exists():
        print(f"(making Pacifica's virtualenv: pacifica-notifications=={VERSION})", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             f"pacifica-notifications=={VERSION}", "psycopg2-binary"],
            check=True,
        )  # fmt: skip
    return python


def psql(sql: str) -> None:
    env = {**os.environ, "PGOPTIONS": "-c client_min_messages=warning"}
    subprocess.run(
        ["psql", "-q", "-v", "ON_ERROR_STOP=1", PG_ADMIN, "-c", sql], env=env, check=True
    )


@contextmanager
def pg_schema(prefix: str) -> Iterator[str]:
    """A schema of its own in the database C{test}; its name. Dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    psql(f"CREATE SCHEMA {name}")
    try:
        yield name
    finally:
        psql(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def pg_url(schema: str) -> str:
    """The URL of the database C{test} with C{schema} first on the search path."""
    return f"{PG_ADMIN}?options=-csearch_path%3D{schema}"


def stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """Stop C{proc} and its children (its own process group: it was started in a new session)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    try:  # the worker's pool, should it outlive its parent
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_for(what: str, ready: object, procs: list[subprocess.Popen[bytes]], log: Path) -> None:
    deadline = time.monotonic() + 60
    while not ready():  # type: ignore[operator]
        if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
            raise SystemExit(f"Pacifica's {what} did not start; see {log}")
        time.sleep(0.1)


@dataclass
class Pacifica:
    """A running Pacifica Notifications: where to post events and subscriptions."""

    base: str

    def receive(self) -> tuple[str, dict[str, str]]:
        return f"{self.base}/receive", {}

    def eventmatch(self) -> tuple[str, dict[str, str]]:
        return f"{self.base}/eventmatch", {"Http-Remote-User": "bench"}


@contextmanager
def pacifica(
    venv: Path, amqp_url: str, policy_url: str, port: int, work: Path
) -> Iterator[Pacifica]:
    """Pacifica's server and celery worker (concurrency 2), on a fresh schema and queue."""
    python = ensure_venv(venv)
    queue = f"pacbench-{uuid.uuid4().hex[:8]}"
    (work / "pacbench.py").write_text(WRAPPER)
    (work / "cpconfig.ini").write_text(CPCONFIG)
    with pg_schema("pacbench") as schema:
        env = {
            **os.environ,
            "PACBENCH_QUEUE": queue,
            "BROKER_URL": amqp_url,
            "BACKEND_URL": "disabled://",  # (no result queues: see the module's docstring)
            "PEEWEE_URL": pg_url(schema).replace("%", "%%"),  # (read by a ConfigParser)
            "POLICY_URL": policy_url,
            "NOTIFICATIONS_CONFIG": str(work / "config.ini"),  # absent: env and defaults only
            "NOTIFICATIONS_CPCONFIG": str(work / "cpconfig.ini"),
            "DATABASE_CONNECT_ATTEMPTS": "3",
            "DATABASE_CONNECT_WAIT": "1",
        }
        subprocess.run(
            [str(venv / "bin" / "pacifica-notifications-cmd"), "dbsync"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        procs: list[subprocess.Popen[bytes]] = []
        try:
            wlog = work / "pacifica-worker.log"
            slog = work / "pacifica-server.log"
            with open(wlog, "wb") as wout, open(slog, "wb") as sout:
                procs.append(
                    subprocess.Popen(
                        [str(python), "pacbench.py", "worker", "-c", "2", "-P", "prefork",
                         "-n", f"{queue}@%h", "-l", "INFO", "--without-gossip",
                         "--without-mingle", "--without-heartbeat"],
                        cwd=work, env=env, stdout=wout, stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )  # fmt: skip
                procs.append(
                    subprocess.Popen(
                        [str(python), "pacbench.py", "server", "--address", "127.0.0.1",
                         "--port", str(port)],
                        cwd=work, env=env, stdout=sout, stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )  # fmt: skip
            base = f"http://127.0.0.1:{port}"
            wait_for("worker", lambda: b" ready." in wlog.read_bytes(), procs, wlog)
            wait_for("server", lambda: _answers(f"{base}/eventmatch"), procs, slog)
            yield Pacifica(base)
        finally:
            for proc in reversed(procs):
                stop(proc)
            _delete_queue(amqp_url, queue)


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()
    except urllib.error.HTTPError:
        return True  # (its 403: no subscriptions yet)
    except OSError:
        return False
    return True


def _delete_queue(amqp_url: str, queue: str) -> None:
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ch = conn.channel()
    ch.queue_delete(queue)
    ch.exchange_delete(queue)
    conn.close()
