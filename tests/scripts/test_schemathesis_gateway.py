"""scripts/schemathesis_gateway: the gateway against its own OpenAPI document.

Runs the script as CI would: it boots twistd with the gateway on a free port
and schemathesis finds no 5xx and no answer that breaks the schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "schemathesis_gateway"


def test_schemathesis_finds_no_5xx_and_no_schema_violation() -> None:
    pytest.importorskip("schemathesis", reason="schemathesis is in the test extra")
    run = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, f"{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
