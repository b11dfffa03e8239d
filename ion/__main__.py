"""C{python -m ion init DIR}: write a new ion project (see L{ion.scripts.ion_init})."""

from __future__ import annotations

import sys

USAGE = "usage: python -m ion init DIR [--name NAME]"


def main(argv: list[str] | None = None) -> int:
    """Run the subcommand C{argv} names; return its exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["init"]:
        from ion.scripts.ion_init import main as init

        return init(argv[1:], prog="python -m ion init")
    print(USAGE, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main())
