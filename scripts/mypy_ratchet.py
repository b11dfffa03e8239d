"""Type-check ion/ with mypy and fail on any error not in the committed baseline.

    scripts/mypy_ratchet.py            # check (what scripts/test and .ci/run do)
    scripts/mypy_ratchet.py --update   # rewrite the baseline (after fixing errors)

The baseline (.ci/mypy-baseline.txt) lists the errors ion had when the check
came in, one per line as ``path: [code] message`` (no line numbers, so edits
elsewhere in a file do not disturb it). An error beyond those is a failure;
baseline errors that are gone are reported, so the baseline can be shrunk with
--update: the count only goes down.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
BASELINE = TOP / ".ci" / "mypy-baseline.txt"
_ERROR = re.compile(r"^(?P<path>[^:]+):\d+(?::\d+)?: error: (?P<text>.*)$")


def current_errors() -> list[tuple[str, str]]:
    """Each mypy error as (baseline key, the line mypy printed)."""
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-pretty", "--no-error-summary"],
        cwd=TOP,
        capture_output=True,
        text=True,
    )
    if done.returncode not in (0, 1):  # 2: mypy itself failed (bad config, crash)
        sys.exit(f"mypy failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    found = []
    for line in done.stdout.splitlines():
        m = _ERROR.match(line)
        if m:
            found.append((f"{m['path']}: {m['text']}", line))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="rewrite the baseline")
    args = parser.parse_args()
    found = current_errors()
    errors = Counter(key for key, _ in found)
    if args.update:
        BASELINE.write_text("".join(f"{e}\n" for e in sorted(errors.elements())))
        print(f"mypy baseline: {sum(errors.values())} errors written to {BASELINE.name}")
        return 0
    known = Counter(BASELINE.read_text().splitlines()) if BASELINE.exists() else Counter()
    new, gone = errors - known, known - errors
    if gone:
        print(f"mypy: {sum(gone.values())} baseline errors are fixed; "
              "run scripts/mypy_ratchet.py --update to lower the baseline")  # fmt: skip
    if new:
        print(f"mypy: {sum(new.values())} new errors (not in {BASELINE.name}):")
        for key, line in found:  # the new ones, with their lines (a repeated error: each)
            if key in new:
                print(line)
        return 1
    print(f"mypy: no new errors ({sum(errors.values())} known, baseline {sum(known.values())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
