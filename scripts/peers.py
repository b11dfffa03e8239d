"""Run the shared nameko benchmark (bench/peers) beside ion's, from a scratch copy.

Used by bench_amqp.py and bench_events.py; needs nameko 2.14.1 in its own
virtualenv (python3 -m venv V && V/bin/pip install nameko==2.14.1).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Where the nameko virtualenv is looked for unless --nameko-venv says otherwise.
DEFAULT_VENV = Path(os.environ.get("NAMEKO_VENV", Path(tempfile.gettempdir()) / "nameko-venv"))


def available(bench_dir: Path, venv: Path) -> bool:
    return (venv / "bin" / "nameko").exists() and (bench_dir / "peers").exists()


@contextlib.contextmanager
def nameko_service(bench_dir: Path, venv: Path) -> Iterator[Callable[..., dict[str, Any]]]:
    """Run the peers echo/emitter service; yield C{bench(*args)} -> the client's JSON result."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "peers"  # the shared copy is read-only; results/ is written
        shutil.copytree(bench_dir / "peers", work, ignore=shutil.ignore_patterns("results"))
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        svc = subprocess.Popen(
            [str(venv / "bin" / "nameko"), "run", "--config", "peers_config.yaml",
             "peers_echo_service"],
            cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

        def bench(*args: str) -> dict[str, Any]:
            out = subprocess.run(
                [str(venv / "bin" / "python"), "nameko_bench.py", *args],
                cwd=work, env=env, capture_output=True, text=True, timeout=600, check=True,
            ).stdout  # fmt: skip
            return json.loads(out.strip().splitlines()[-1])

        try:
            deadline = time.monotonic() + 60
            while True:  # until the service answers
                try:
                    bench("rpc-seq", "--calls", "1", "--warmup", "0")
                    break
                except subprocess.CalledProcessError:
                    if time.monotonic() > deadline:
                        raise
            yield bench
        finally:
            svc.send_signal(signal.SIGTERM)
            svc.wait(timeout=30)
            _cleanup(venv, work)


def _cleanup(venv: Path, work: Path) -> None:
    """Delete nameko's durable leftovers with the peers cleanup script."""
    subprocess.run(
        [str(venv / "bin" / "python"), "cleanup_broker.py"],
        cwd=work, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
