"""Benchmark: one of ion's bench scripts on this checkout beside an earlier commit, in one run.

    .venv/bin/python scripts/bench_versus.py --base HEAD~1 bench_local.py --calls 20000 --runs 1
    .venv/bin/python scripts/bench_versus.py --base main --rounds 5 bench_amqp.py --runs 1

The commit's files are exported (git archive) into a temporary directory, and
the bench script (its arguments after the name) runs there and here in turn,
A B B A A B ..., each with its own tree first on PYTHONPATH, so machine noise
falls on both alike. Each run's last line "RESULT {json}" gives its ion
figures; the medians of each side and their ratio (this checkout / base) are
printed. It compares code, not environments: both sides use this virtualenv.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def export(rev: str, into: Path) -> None:
    """The tree of C{rev} (tracked files only) into C{into}."""
    archive = into / "tree.tar"
    subprocess.run(["git", "archive", "-o", str(archive), rev], cwd=REPO, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "tree", filter="data")
    archive.unlink()


def run(tree: Path, bench: str, args: list[str]) -> dict[str, float]:
    """Run C{bench} of C{tree} with C{args}; the ion figures of its RESULT line."""
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run(
        [sys.executable, str(tree / "scripts" / bench), *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"{bench} in {tree} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    result = json.loads(lines[-1][len("RESULT ") :])
    return {k: float(v) for k, v in result.get("ion", result).items() if isinstance(v, int | float)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="HEAD~1", help="the commit to compare with (default HEAD~1)")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each side (default 3)")
    ap.add_argument("bench", help="a script under scripts/ that prints RESULT {json}")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    a = ap.parse_args()
    args = list(a.args)
    if a.bench == "bench_amqp.py" and "--bench-dir" not in args:
        args += ["--bench-dir", str(REPO.parent / "shared" / "bench")]  # as from here
    with tempfile.TemporaryDirectory(prefix="ion-versus-") as tmp:
        export(a.base, Path(tmp))
        sides = {"base": Path(tmp) / "tree", "this": REPO}
        runs: dict[str, list[dict[str, float]]] = {"base": [], "this": []}
        for i in range(a.rounds):
            order = ["base", "this"] if i % 2 == 0 else ["this", "base"]
            for side in order:
                runs[side].append(run(sides[side], a.bench, args))
    base_rev = subprocess.run(
        ["git", "rev-parse", "--short", a.base], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    print(f"{a.bench} {' '.join(a.args)}: median of {a.rounds} runs each, in turn")
    print(f"{'':22}{'base ' + base_rev:>16}{'this checkout':>16}{'this/base':>11}")
    for key in runs["base"][0]:
        base = statistics.median(r[key] for r in runs["base"])
        this = statistics.median(r[key] for r in runs["this"])
        ratio = f"{this / base:.3f}x" if base else "-"
        print(f"{key:22}{base:>16,.1f}{this:>16,.1f}{ratio:>11}")


if __name__ == "__main__":
    main()
