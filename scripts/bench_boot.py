#!/usr/bin/env python
"""Benchmark: time from launching C{twistd -n cc RELEASE} to its ready file.

Launches C{twistd --pidfile= -n cc --ready-file F RELEASE} --runs times (the
three-app demo release by default), reports each launch-to-ready time and the
median, then stops each container with SIGINT and checks it exits with 0.
Run from anywhere; containers run with the repository as working directory.

    scripts/bench_boot.py [--runs 5] [--release res/deploy/demo.rel]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The twistd next to this Python (a venv's), else twistd's entry point run by it.
_SCRIPT = Path(sys.executable).parent / "twistd"
TWISTD = (
    [str(_SCRIPT)]
    if _SCRIPT.exists()
    else [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
)
POLL = 0.002  # seconds between looks at the ready file (another OS process writes it)


def child_env() -> dict[str, str]:
    """The containers' environment: this one without ION_ variables (a config layer)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ION_")}


def boot_once(release: str, index: int, timeout: float, env: dict[str, str]) -> float:
    """Seconds from launch to the ready file; the container is stopped again after."""
    with tempfile.TemporaryDirectory(prefix="ion-bench-") as tmp:
        ready = Path(tmp, "ready")
        command = [
            *TWISTD,
            "--pidfile=",
            "-n",
            "cc",
            "--container-id",
            f"bench{index}-{os.getpid()}",
            "--ready-file",
            str(ready),
            release,
        ]
        start = time.perf_counter()
        proc = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # A shell's background job ignores SIGINT, and its children inherit that.
            preexec_fn=_default_sigint,
        )
        try:
            deadline = start + timeout
            while not ready.exists():
                if proc.poll() is not None:
                    raise SystemExit(
                        f"container exited with {proc.returncode}:\n{proc.stdout.read()}"
                    )
                if time.perf_counter() > deadline:
                    raise SystemExit(f"no ready file after {timeout}s")
                time.sleep(POLL)
            elapsed = time.perf_counter() - start
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            output, _ = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise SystemExit(f"container exited with {proc.returncode} after SIGINT:\n{output}")
        return elapsed


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--release", default="res/deploy/demo.rel")
    parser.add_argument("--timeout", type=float, default=20.0)
    opts = parser.parse_args()
    env = child_env()
    times = []
    for i in range(opts.runs):
        elapsed = boot_once(opts.release, i + 1, opts.timeout, env)
        times.append(elapsed)
        print(f"run {i + 1}: {elapsed * 1000:.0f} ms to ready, exit 0 after SIGINT")
    print(
        f"launch -> ready file, twistd -n cc {opts.release}: "
        f"median {statistics.median(times) * 1000:.0f} ms of {opts.runs} "
        f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f})"
    )


if __name__ == "__main__":
    main()
