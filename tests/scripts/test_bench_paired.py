"""scripts/bench_paired.py runs end to end: both sides of a setting answer, call
by call, and the table and its RESULT line say what was measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.rabbit import require_rabbitmq

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_paired.py"


@pytest.mark.rabbitmq
@pytest.mark.parametrize("same", [False, True], ids=["sign-on-off", "a-a"])
def test_one_short_round_prints_its_changes(same: bool) -> None:
    require_rabbitmq()
    env = {k: v for k, v in os.environ.items() if k != "ION_SYSTEM_KEY"}  # (it makes one)
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--rounds", "1", "--seq", "20", *(["--same"] if same else [])],
        capture_output=True, text=True, timeout=120, env=env, check=True,
    ).stdout  # fmt: skip
    assert out.startswith("A/A: both sides off, " if same else "sign on / off, rpc over RabbitMQ")
    result = json.loads(out.strip().splitlines()[-1].removeprefix("RESULT "))
    assert len(result["p50_changes"]) == 1 and all(p > 0 for p in result["p50_pooled_us"])
