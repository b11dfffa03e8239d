"""Process ids and names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ion.core.id import InvalidNameError, ProcessId, check_name

word = st.from_regex(r"[A-Za-z0-9_\-]{1,8}", fullmatch=True)
name = st.lists(word, min_size=1, max_size=3).map(".".join)


@given(name, st.integers(min_value=0, max_value=10**9), name)
def test_process_id_round_trips(proc_name: str, local: int, container: str) -> None:
    """Every process id prints and parses back to itself."""
    pid = ProcessId(proc_name, local, container)
    assert ProcessId.parse(str(pid)) == pid
    assert ProcessId.is_pid(str(pid))


@pytest.mark.parametrize("text", ["hello", "hello@c", "hello.x@c", "a.1@", "a.1@c*", "#.1@c", ""])
def test_not_process_ids(text: str) -> None:
    """Strings that are not name.n@container are refused with a clear error."""
    assert not ProcessId.is_pid(text)
    with pytest.raises(InvalidNameError, match="not a process id"):
        ProcessId.parse(text)


@pytest.mark.parametrize("bad", ["a*", "a.#", "a..b", ".a", "a b", "", "a/b"])
def test_wildcard_and_odd_names_refused(bad: str) -> None:
    """Names that could widen a binding or break a queue name are refused."""
    with pytest.raises(InvalidNameError):
        check_name(bad)


def test_names_fit_in_amqp_short_strings() -> None:
    """A name is part of queue names and keys, which AMQP caps at 255 bytes."""
    from ion.core.id import MAX_NAME, InvalidNameError, check_name

    assert check_name("a" * MAX_NAME) == "a" * MAX_NAME
    with pytest.raises(InvalidNameError, match=f"longer than {MAX_NAME}"):
        check_name("a" * (MAX_NAME + 1), "sysname")


@pytest.mark.parametrize("sysname", ["amq", "amq.lab"])
def test_a_sysname_naming_broker_queues_is_refused(sysname: str) -> None:
    from ion.core.id import InvalidNameError, check_sysname

    with pytest.raises(InvalidNameError, match="'amq.' names are the broker's own"):
        check_sysname(sysname)
    assert check_sysname("amqp-lab") == "amqp-lab"
