"""What the shell's helpers return: L{Text} shown as it is, L{Table} shown aligned."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any


class Text(str):
    """A string the shell shows as it is, without quotes."""

    def __repr__(self) -> str:
        return str(self)


class Table:
    """Rows under named columns; its text (and repr) is the aligned table."""

    def __init__(
        self, columns: Sequence[str], rows: Sequence[Sequence[Any]], what: str = ""
    ) -> None:
        self.columns = list(columns)
        self.rows = [["" if v is None else str(v) for v in row] for row in rows]
        self.what = what  # "process" -> footer "2 processes"

    def __iter__(self) -> Iterator[list[str]]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> list[str]:
        """The values of column C{name}, top to bottom."""
        i = self.columns.index(name)
        return [row[i] for row in self.rows]

    def __str__(self) -> str:
        widths = [len(c) for c in self.columns]
        for row in self.rows:
            widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]

        def line(values: Sequence[str]) -> str:
            return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

        out = [line(self.columns), line(["-" * w for w in widths])]
        out += [line(row) for row in self.rows]
        if self.what:
            n = len(self.rows)
            out.append(
                f"{n} {self.what}{'' if n == 1 else 'es' if self.what.endswith('s') else 's'}"
            )
        return "\n".join(out)

    __repr__ = __str__
