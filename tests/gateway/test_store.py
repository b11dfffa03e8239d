"""The gateway store (ion.gateway.store), the same tests on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import task
from twisted.internet.defer import DeferredList, ensureDeferred

from ion.core.exception import StartupError
from ion.gateway import migrations
from ion.gateway.store import LeaseLost, Store

FIELDS = {"name": "n", "jsonpath": "$.data", "target_url": "http://example.com/hook"}


def key(source: str, event_id: str) -> str:
    return hashlib.sha256(f"{source}\0{event_id}".encode()).hexdigest()


def event(n: int) -> dict[str, Any]:
    return {"specversion": "1.0", "id": str(n), "source": "/t", "type": "t", "data": {"n": n}}


async def subscribe(store: Store, user: str = "alice", **fields: Any) -> str:
    return (await store.create_subscription(user, {**FIELDS, **fields})).uuid


async def fill(store: Store, sub: str, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        assert await store.enqueue(key("/t", str(n)), event(n), [sub]) == 1


@pytest_twisted.ensureDeferred
async def test_subscription_crud(make_store: Any) -> None:
    """Create, read, list (per user, live only), update and delete keep Pacifica's fields."""
    clock = task.Clock()
    clock.advance(1_600_000_000)
    store = await make_store(clock)
    changes = await store.changed()
    rec = await store.create_subscription(
        "alice", {**FIELDS, "auth": {"type": "basic", "basic": {"username": "u", "password": "p"}}}
    )
    assert await store.changed() > changes
    body = rec.to_json()
    assert body["user"] == "alice" and body["version"] == "v0.1"
    assert body["created"] == body["updated"] == "2020-09-13T12:26:40+00:00"
    assert body["deleted"] is None and body["disabled"] is None and body["error"] is None
    assert body["extensions"] == {} and body["auth"]["type"] == "basic"
    assert (await store.get_subscription(rec.uuid)) == rec
    other = await subscribe(store, "bob")
    assert [r.uuid for r in await store.list_subscriptions("alice")] == [rec.uuid]
    clock.advance(5)
    updated = await store.update_subscription(
        rec.uuid, {"target_url": "http://example.org/x", "extensions": {"a": 1}}
    )
    assert updated is not None
    assert updated.target_url == "http://example.org/x" and updated.extensions == {"a": 1}
    assert updated.updated == rec.updated + 5 and updated.created == rec.created
    assert await store.delete_subscription(rec.uuid)
    assert not await store.delete_subscription(rec.uuid)
    gone = await store.get_subscription(rec.uuid)
    assert gone is not None and gone.deleted is not None
    assert await store.update_subscription(rec.uuid, {"name": "x"}) is None
    assert await store.list_subscriptions("alice") == []
    assert [s.uuid for s in await store.active_subscriptions()] == [other]
    assert await store.get_subscription("no-such") is None


@pytest_twisted.ensureDeferred
async def test_active_subscriptions_leave_out_disabled_keep_errored(make_store: Any) -> None:
    """Disabled and deleted subscriptions are not active; errored ones are (events queue up)."""
    store = await make_store()
    live, disabled, errored, deleted = [await subscribe(store) for _ in range(4)]
    await store.update_subscription(disabled, {"disabled": 1.0})
    await store.update_subscription(errored, {"error": "boom"})
    await store.delete_subscription(deleted)
    await store.update_subscription(live, {"extensions": {"k": "v"}})
    active = {s.uuid: s for s in await store.active_subscriptions()}
    assert set(active) == {live, errored}
    assert active[live].extensions == {"k": "v"} and active[errored].extensions is None
    assert active[errored].error == "boom" and not active[errored].disabled


@pytest_twisted.ensureDeferred
async def test_sightings(make_store: Any) -> None:
    """A (source, id) is new once; forgetting it makes it new again."""
    store = await make_store()
    assert await store.first_sighting("/s", "1")
    assert not await store.first_sighting("/s", "1")
    assert await store.first_sighting("/s", "2")
    assert await store.first_sighting("/other", "1")
    assert await store.seen("/s", "1") and not await store.seen("/s", "3")


@pytest_twisted.ensureDeferred
async def test_enqueue_is_idempotent(make_store: Any) -> None:
    """One delivery per (event, subscription): enqueueing again adds only what is new."""
    store = await make_store()
    a, b = await subscribe(store), await subscribe(store)
    k = key("/t", "1")
    assert await store.enqueue(k, event(1), [a]) == 1
    assert await store.enqueue(k, event(1), [a, b, b]) == 1
    assert await store.enqueue(k, event(1), [a, b]) == 0
    assert await store.enqueue(k, event(1), []) == 0
    got = await store.claim("w", 0.0, 30, 10)
    assert sorted(d.subscription for d in got) == sorted([a, b])
    assert all(d.event == event(1) and d.attempts == 0 for d in got)
    assert len({d.id for d in got}) == 2


@pytest_twisted.ensureDeferred
async def test_claim_one_per_subscription_in_order(make_store: Any) -> None:
    """A claim gives each subscription's oldest pending delivery only; the next comes after it."""
    store = await make_store()
    a = await subscribe(store)
    b = await subscribe(
        store,
        target_url="http://b.example/",
        auth={"type": "header", "header": {"type": "Bearer", "credentials": "c"}},
        extensions={"x": 1},
    )
    await fill(store, a, 3)
    await fill(store, b, 2, start=10)
    got = await store.claim("w1", 100.0, 30, 10)
    assert {(d.subscription, d.event["id"]) for d in got} == {(a, "0"), (b, "10")}
    by_sub = {d.subscription: d for d in got}
    assert by_sub[b].target_url == "http://b.example/" and by_sub[b].extensions == {"x": 1}
    assert by_sub[b].auth == {"type": "header", "header": {"type": "Bearer", "credentials": "c"}}
    assert by_sub[a].auth is None and by_sub[a].extensions is None
    # (heads are leased: nothing more for anyone, not even the same worker)
    assert await store.claim("w1", 100.0, 30, 10) == []
    assert await store.claim("w2", 100.0, 30, 10) == []
    seen: list[str] = []
    for _ in range(3):
        for d in got:
            if d.subscription == a:
                seen.append(d.event["id"])
            await store.delivered(d.id, "w1")
        got = await store.claim("w1", 100.0, 30, 10)
    assert seen == ["0", "1", "2"]
    assert got == []


@pytest_twisted.ensureDeferred
async def test_claim_respects_limit_and_due_time(make_store: Any) -> None:
    """At most C{limit} deliveries; a delivery waiting for its retry time is not due."""
    store = await make_store()
    subs = [await subscribe(store) for _ in range(3)]
    for n, sub in enumerate(subs):
        await store.enqueue(key("/t", str(n)), event(n), [sub])
    first = await store.claim("w", 10.0, 100, 2)
    assert len(first) == 2
    assert [d.seq for d in first] == sorted(d.seq for d in first)
    await store.failed(first[0].id, "w", "503", retry_at=50.0)
    assert [d.subscription for d in await store.claim("w", 10.0, 100, 5)] == [subs[2]]
    assert await store.claim("w", 49.0, 100, 5) == []
    again = await store.claim("w", 50.0, 100, 5)
    assert [(d.id, d.attempts) for d in again] == [(first[0].id, 1)]


@pytest_twisted.ensureDeferred
async def test_expired_lease_is_claimable(make_store: Any) -> None:
    """A worker that dies holding a lease: once it expires another worker gets the delivery."""
    store = await make_store()
    sub = await subscribe(store)
    await fill(store, sub, 2)
    (held,) = await store.claim("dead", 0.0, 30, 10)
    assert await store.claim("alive", 29.9, 30, 10) == []
    (taken,) = await store.claim("alive", 30.0, 30, 10)
    assert taken.id == held.id and taken.event["id"] == "0"
    # (the dead worker's late report of failure is not its to make any more)
    await store.failed(held.id, "dead", "late", None)
    assert (await store.get_subscription(sub)).error is None  # type: ignore[union-attr]
    await store.delivered(taken.id, "alive")
    (nxt,) = await store.claim("alive", 31.0, 30, 10)
    assert nxt.event["id"] == "1"


@pytest_twisted.ensureDeferred
async def test_park_sets_error_and_retry_unparks_in_order(make_store: Any) -> None:
    """A delivery parked: its subscription gets the error and stops; retry_parked resumes it in order."""
    store = await make_store()
    sub = await subscribe(store)
    await fill(store, sub, 3)
    (d0,) = await store.claim("w", 0.0, 30, 10)
    await store.failed(d0.id, "w", "target said 500", None)
    rec = await store.get_subscription(sub)
    assert rec is not None and rec.error == "target said 500"
    assert await store.claim("w", 1000.0, 30, 10) == []
    # (events keep arriving for an errored subscription and wait behind the parked one)
    await fill(store, sub, 1, start=3)
    assert await store.retry_parked(sub) == 1
    assert (await store.get_subscription(sub)).error is None  # type: ignore[union-attr]
    order = []
    for _ in range(4):
        (d,) = await store.claim("w", 1000.0, 30, 10)
        order.append((d.event["id"], d.attempts))
        await store.delivered(d.id, "w")
    assert order == [("0", 0), ("1", 0), ("2", 0), ("3", 0)]
    assert await store.retry_parked(sub) == 0


@pytest_twisted.ensureDeferred
async def test_clearing_error_by_update_unparks(make_store: Any) -> None:
    """A Pacifica client's re-enable (PUT error: null) resumes parked deliveries too."""
    store = await make_store()
    sub = await subscribe(store)
    await fill(store, sub, 1)
    (d,) = await store.claim("w", 0.0, 30, 10)
    await store.failed(d.id, "w", "down", None)
    await store.update_subscription(sub, {"error": None, "disabled": None})
    (again,) = await store.claim("w", 0.0, 30, 10)
    assert again.id == d.id


@pytest_twisted.ensureDeferred
async def test_disabled_or_deleted_subscriptions_are_not_claimed(make_store: Any) -> None:
    """Deliveries of a disabled or deleted subscription wait (disabled) or stay (deleted)."""
    store = await make_store()
    disabled, deleted = await subscribe(store), await subscribe(store)
    await fill(store, disabled, 1)
    await fill(store, deleted, 1, start=5)
    await store.update_subscription(disabled, {"disabled": 5.0})
    await store.delete_subscription(deleted)
    assert await store.claim("w", 0.0, 30, 10) == []
    await store.update_subscription(disabled, {"disabled": None})
    assert [d.subscription for d in await store.claim("w", 0.0, 30, 10)] == [disabled]


@pytest_twisted.ensureDeferred
async def test_two_stores_never_claim_the_same_delivery(make_store: Any) -> None:
    """Two instances on one database claiming at once: every delivery goes to exactly one."""
    one, two = await make_store(), await make_store()
    subs = [await subscribe(one) for _ in range(8)]
    for n in range(5):
        for s in subs:
            await one.enqueue(key("/t", f"{n}"), event(n), [s])
    taken: list[tuple[str, str]] = []
    for _round in range(5):
        results = await DeferredList(
            [
                ensureDeferred(store.claim(name, 0.0, 30, 3))
                for store, name in [(one, "w1"), (two, "w2"), (one, "w3"), (two, "w4")]
                for _ in range(2)
            ],
            fireOnOneErrback=True,
        )
        batch = [d for ok, got in results for d in got]
        ids = [d.id for d in batch]
        assert len(ids) == len(set(ids)), "a delivery was claimed twice"
        assert len({d.subscription for d in batch}) == len(batch)
        for d in batch:
            taken.append((d.subscription, d.event["id"]))
            await one.delivered(d.id, "any")
    while batch := await two.claim("w", 0.0, 30, 100):
        for d in batch:
            taken.append((d.subscription, d.event["id"]))
            await two.delivered(d.id, "w")
    assert len(taken) == len(set(taken)) == 40
    for s in subs:
        assert [i for sub, i in taken if sub == s] == ["0", "1", "2", "3", "4"]


@pytest_twisted.ensureDeferred
async def test_lease_is_held_by_one_owner_until_it_expires(make_store: Any) -> None:
    """A lease is taken when free, extended by its owner, refused to another until it
    expires, and free again once released."""
    store = await make_store()
    assert await store.hold("m", "a", 100.0, 10.0)
    assert not await store.hold("m", "b", 105.0, 10.0)
    assert await store.hold("m", "a", 108.0, 10.0)  # extended to 118
    assert not await store.hold("m", "b", 117.0, 10.0)
    assert await store.hold("other", "b", 117.0, 10.0)  # (names are apart)
    assert await store.hold("m", "b", 118.0, 10.0)  # expired: taken over
    assert not await store.hold("m", "a", 119.0, 10.0)
    await store.release("m", "a")  # not a's: nothing happens
    assert not await store.hold("m", "a", 119.0, 10.0)
    await store.release("m", "b")
    assert await store.hold("m", "a", 119.0, 10.0)


@pytest_twisted.ensureDeferred
async def test_owners_racing_for_a_lease_one_wins(make_store: Any) -> None:
    """Several instances taking one free (then expired) lease at once: exactly one gets it."""
    stores = [await make_store() for _ in range(3)]
    for now in (0.0, 100.0):
        results = await DeferredList(
            [
                ensureDeferred(store.hold("m", f"o{i}{j}", now, 10.0))
                for i, store in enumerate(stores)
                for j in range(3)
            ],
            fireOnOneErrback=True,
        )
        assert sum(held for _, held in results) == 1


@pytest_twisted.ensureDeferred
async def test_enqueue_for_a_holder_commits_only_while_it_holds(make_store: Any) -> None:
    """An enqueue for (lease, owner) writes while the owner holds it, even past its end,
    and raises LeaseLost, writing nothing, once another took it (or none holds it)."""
    store = await make_store()
    sub = await subscribe(store)
    assert await store.hold("matcher", "a", 0.0, 10.0)
    assert await store.enqueue(key("/t", "1"), event(1), [sub], holder=("matcher", "a")) == 1
    with pytest.raises(LeaseLost):
        await store.enqueue(key("/t", "2"), event(2), [sub], holder=("matcher", "b"))
    with pytest.raises(LeaseLost):
        await store.enqueue(key("/t", "2"), event(2), [sub], holder=("nothing", "a"))
    # expired but not taken: a's writes still come before any new holder's
    assert await store.enqueue(key("/t", "2"), event(2), [sub], holder=("matcher", "a")) == 1
    assert await store.hold("matcher", "b", 20.0, 10.0)
    with pytest.raises(LeaseLost):
        await store.enqueue(key("/t", "3"), event(3), [sub], holder=("matcher", "a"))
    assert await store.enqueue(key("/t", "3"), event(3), [sub], holder=("matcher", "b")) == 1
    claimed = []
    while batch := await store.claim("w", 0.0, 30, 10):
        claimed += [d.event["id"] for d in batch]
        for d in batch:
            await store.delivered(d.id, "w")
    assert claimed == ["1", "2", "3"]


@pytest_twisted.ensureDeferred
async def test_reopen_keeps_everything_and_migrates_once(make_store: Any) -> None:
    """A store opened again (a restart) finds its rows; the schema version is current."""
    store = await make_store()
    sub = await subscribe(store)
    await fill(store, sub, 1)
    await store.close()
    again = await make_store()
    (d,) = await again.claim("w", 0.0, 30, 10)
    assert d.subscription == sub
    version = await again._run(  # type: ignore[attr-defined]
        lambda c: c.execute("SELECT version FROM schema_version").fetchall()
    )
    assert version == [(migrations.VERSION,)]


@pytest_twisted.ensureDeferred
async def test_a_version_1_database_gets_its_leases_table(make_store: Any) -> None:
    """A database of schema version 1 (no leases) is migrated to the current one on
    open, its rows kept."""
    store = await make_store()
    sub = await subscribe(store)

    def back_to_1(cursor: Any) -> None:
        cursor.execute("DROP TABLE leases")
        cursor.execute("UPDATE schema_version SET version = 1")

    await store._run(back_to_1)  # type: ignore[attr-defined]
    await store.close()
    again = await make_store()
    assert await again.hold("matcher", "a", 0.0, 10.0)
    assert [s.uuid for s in await again.active_subscriptions()] == [sub]
    version = await again._run(  # type: ignore[attr-defined]
        lambda c: c.execute("SELECT version FROM schema_version").fetchall()
    )
    assert version == [(migrations.VERSION,)] == [(2,)]


@pytest_twisted.ensureDeferred
async def test_concurrent_opens_migrate_once(make_store: Any) -> None:
    """Several instances opening a fresh database at once all succeed, one schema row."""
    stores = await DeferredList(
        [ensureDeferred(make_store()) for _ in range(4)], fireOnOneErrback=True
    )
    first = stores[0][1]
    rows = await first._run(lambda c: c.execute("SELECT version FROM schema_version").fetchall())
    assert rows == [(migrations.VERSION,)]


@pytest_twisted.ensureDeferred
async def test_a_newer_schema_is_refused(make_store: Any) -> None:
    """A database migrated by a newer ion is not opened by this one."""
    store = await make_store()
    await store._run(  # type: ignore[attr-defined]
        lambda c: c.execute("UPDATE schema_version SET version = 999")
    )
    with pytest.raises(StartupError, match="999"):
        await make_store()


@pytest_twisted.ensureDeferred
async def test_prune_forgets_only_what_is_old_and_done(make_store: Any) -> None:
    """Pruning drops delivered deliveries and sightings older than the cut, nothing pending."""
    clock = task.Clock()
    store = await make_store(clock)
    sub = await subscribe(store)
    clock.advance(100)
    assert await store.first_sighting("/t", "old")
    await fill(store, sub, 2)
    (d,) = await store.claim("w", 100.0, 30, 10)
    await store.delivered(d.id, "w")
    clock.advance(100)
    assert await store.first_sighting("/t", "new")
    assert await store.prune(150.0) == 2
    assert await store.first_sighting("/t", "old")
    assert not await store.first_sighting("/t", "new")
    (pending,) = await store.claim("w", 200.0, 30, 10)
    assert pending.event["id"] == "1"
    # (the delivered one forgotten: the same event may be enqueued again)
    assert await store.enqueue(key("/t", "0"), event(0), [sub]) == 1


NEVER_CLOSED = """
import sys
from twisted.internet import reactor, defer
from ion.gateway.config import GatewayConfig
from ion.gateway.store import open_store

async def main():
    store = await open_store(GatewayConfig(data_dir=sys.argv[1]), reactor)
    await store.first_sighting("/s", "1")
    reactor.stop()  # (the store is never closed)

defer.ensureDeferred(main()).addErrback(lambda f: (f.printTraceback(), reactor.stop()))
reactor.run()
"""


def test_a_store_never_closed_does_not_keep_the_process_alive(tmp_path: Any) -> None:
    """The store's threads stop when the reactor shuts down, closed or not."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", NEVER_CLOSED, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "data" / "gateway.sqlite").exists()
