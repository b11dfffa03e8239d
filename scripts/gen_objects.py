#!/usr/bin/env python
"""Regenerate ion's *_pb2 modules from ion/core/object/proto/*.proto.

Usage: scripts/gen_objects.py [--check]
  --check  do not write; list stale modules and exit 1 if any.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ion.core.object import gencode  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Generate in place, or with --check only report stale modules."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale modules, write nothing")
    args = parser.parse_args(argv)
    root = gencode.repo_root()
    if args.check:
        problems = gencode.check(root)
        for line in problems:
            print(line)
        return 1 if problems else 0
    for rel in gencode.generate(root, root):
        print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
