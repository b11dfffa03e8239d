"""The browser tier's lines in pytest's summary: how many of its tests ran, in how
long, and the screenshots they saved.

A plugin that tests/conftest.py registers: under xdist the summary is printed by
the main process, which runs no test and loads no conftest below tests/, so the
tier's numbers come from the tests' reports, which reach it from the workers
(tests/browser/conftest.py puts L{TIER} and each L{SHOT} in a browser test's
C{user_properties}, which its reports carry).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

TIER, SHOT = "browser tier", "browser screenshot"  # the names in a test's user_properties

_tier = {"tests": 0, "ran": 0, "seconds": 0.0}
_shots: list[Path] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Counts the tier's tests and time from their reports, which reach the process
    that prints the summary also when xdist's workers ran them."""
    if (TIER, True) not in report.user_properties:
        return
    _tier["seconds"] += report.duration
    if report.when == "setup":
        _tier["tests"] += 1
    elif report.when == "call":
        _tier["ran"] += 1  # not skipped
    elif report.when == "teardown":
        _shots.extend(Path(str(v)) for k, v in report.user_properties if k == SHOT)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _tier["tests"]:
        skipped = _tier["tests"] - _tier["ran"]
        terminalreporter.write_line(
            f"browser tier: {_tier['ran']} tests in {_tier['seconds']:.2f} s (target < 10 s)"
            + (f", {skipped} not run" if skipped else "")
        )
    for path in _shots:
        terminalreporter.write_line(f"browser tier screenshot: {path}")
