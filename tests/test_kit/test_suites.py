"""The trial suites (the kit's own and the bank and greeter examples') and the example's pytest suite,
each run in a subprocess the way a user runs it, so the project's one pytest command
covers them. Trial prints PASSED even when it ran nothing, so the count is checked."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ion.test.brokers import parse_broker
from ion.test.plugin import require_broker

ROOT = Path(__file__).resolve().parents[2]
BANK = ROOT / "examples" / "bank"

BROKERS = ["local", pytest.param("amqp", marks=pytest.mark.rabbitmq)]
TRIAL_SUITES = {
    "kit": (ROOT, "tests.test_kit.trial", 10),
    "bank": (BANK, "tests_trial", 5),
    # A user's suite whose handlers raise and whose clients take no arguments.
    "greeter": (ROOT / "examples" / "greeter", "test_greeter", 5),
}


def _run(cmd: list[str], cwd: Path, broker: str) -> subprocess.CompletedProcess[str]:
    require_broker(parse_broker(broker))
    env = dict(os.environ, ION_TEST_BROKER=broker)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def trial_counts(output: str) -> dict[str, int]:
    """The counts of trial's last line, e.g. C{PASSED (skips=1, successes=6)}."""
    match = re.search(r"^(PASSED|FAILED) \((.*)\)\s*$", output, re.M)
    assert match is not None, output
    counts = dict(item.split("=") for item in match.group(2).split(", "))
    return {"passed": match.group(1) == "PASSED", **{k: int(v) for k, v in counts.items()}}


def test_trial_counts_parses_the_summary():
    """The summary parser reads outcome and counts."""
    assert trial_counts("...\nPASSED (skips=1, successes=6)\n") == {
        "passed": True,
        "skips": 1,
        "successes": 6,
    }
    assert trial_counts("FAILED (errors=2, successes=3)")["errors"] == 2


@pytest.mark.parametrize("broker", BROKERS)
@pytest.mark.parametrize("suite", sorted(TRIAL_SUITES))
def test_trial_suite_passes(suite, broker, tmp_path):
    """The trial suite passes under `python -m twisted.trial`, every test run and none skipped."""
    cwd, target, expected = TRIAL_SUITES[suite]
    cmd = [sys.executable, "-m", "twisted.trial", f"--temp-directory={tmp_path / '_trial'}"]
    run = _run([*cmd, target], cwd, broker)

    assert trial_counts(run.stdout) == {"passed": True, "successes": expected}, run.stdout
    assert run.returncode == 0


@pytest.mark.parametrize("broker", BROKERS)
def test_bank_example_pytest_suite_passes(broker):
    """The bank example's own pytest suite passes, run from its directory as a user would."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--ion-broker={broker}"]
    run = _run(cmd, BANK, broker)

    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"^9 passed in ", run.stdout, re.M), run.stdout
