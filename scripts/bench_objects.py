#!/usr/bin/env python
"""Serialize + parse rate of a ~20-field ion object, reading every field back.

A Person with 6 phone numbers and an address holds 19 leaf fields. The object is
built once; each op is SerializeToString + FromString + a read of every field
(upb parses lazily, so skipping the reads would flatter protobuf ~3.5x).
Prints the median of 3 runs in ops/s.

Usage: scripts/bench_objects.py [N]   (N ops per run, default 100000)
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ion.core.object.helpers import create_object  # noqa: E402
from ion.core.object.proto.examples_pb2 import Person  # noqa: E402


def build() -> Person:
    """The benchmark object: 3 scalars, 6 phones (number + type), 4 address fields."""
    phones = [{"number": f"+1-508-555-01{i:02d}", "type": i % 3} for i in range(6)]
    address = {"line": "1 Water St", "city": "Woods Hole", "postal_code": "02543", "country": "US"}
    return create_object(
        Person, name="Ada Lovelace", id=1815, email="ada@example.org", phone=phones, address=address
    )


def read_all(p: Person) -> int:
    """Touch every field so lazy parsing cannot skip work."""
    n = len(p.name) + p.id + len(p.email)
    for phone in p.phone:
        n += len(phone.number) + phone.type
    a = p.address
    return n + len(a.line) + len(a.city) + len(a.postal_code) + len(a.country)


def run(obj: Person, ops: int) -> float:
    """ops/s of one run."""
    from_string = Person.FromString
    start = time.perf_counter()
    for _ in range(ops):
        read_all(from_string(obj.SerializeToString()))
    return ops / (time.perf_counter() - start)


def main() -> None:
    ops = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    obj = build()
    assert read_all(Person.FromString(obj.SerializeToString())) == read_all(obj)
    rates = [run(obj, ops) for _ in range(3)]
    size = len(obj.SerializeToString())
    print(f"Person, 19 fields, {size} B: serialize + parse + read every field")
    print(f"  runs: {', '.join(f'{r:,.0f}' for r in rates)} ops/s")
    print(f"  median: {statistics.median(rates):,.0f} ops/s")


if __name__ == "__main__":
    main()
