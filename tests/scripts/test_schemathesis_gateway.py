"""scripts/schemathesis_gateway: the gateway against its own OpenAPI document.

Runs the script as CI would: it boots twistd with the gateway on a free port
and schemathesis finds no 5xx and no answer that breaks the schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ion.test.brokers import on_ci

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "schemathesis_gateway"


def test_schemathesis_finds_no_5xx_and_no_schema_violation() -> None:
    try:
        import schemathesis  # noqa: F401
    except ImportError:
        if on_ci():  # (under CI nothing skips: the test extra installs it)
            pytest.fail("schemathesis is not installed (it is in the test extra)")
        pytest.skip("schemathesis is not installed (it is in the test extra)")
    # 15 examples an operation (the script's default is 50): the coverage
    # phase still makes ~750 cases, in a quarter of the time.
    argv = [sys.executable, str(SCRIPT), "-n", "15"]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, f"{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
