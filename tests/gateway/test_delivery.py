"""The delivery worker on a task.Clock, with the fake Store and a fake poster."""

from __future__ import annotations

import base64
import json
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock

from ion.gateway.delivery import DeliveryWorker, auth_headers
from ion.gateway.targets import Unresolved
from ion.gateway.web import HttpError
from tests.gateway.fakes import FakeStore


class Target:
    """A fake poster: each post waits for the test to answer it (or answers at once)."""

    def __init__(self, status: int | None = 200) -> None:
        self.status = status  # None: leave posts unanswered
        self.posts: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.waiting: list[Deferred[int]] = []

    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> Deferred[int]:
        self.posts.append((url, json.loads(body), headers))
        d: Deferred[int] = Deferred()
        if self.status is None:
            self.waiting.append(d)
        else:
            d.callback(self.status)
        return d

    def ids(self) -> list[str]:
        return [event["id"] for _, event, _ in self.posts]


def make(target: Target, **kw: Any) -> tuple[DeliveryWorker, FakeStore, Clock]:
    store, clock = FakeStore(), Clock()
    kw.setdefault("random", lambda: 1.0)  # the jitter's upper end: the ceiling itself
    worker = DeliveryWorker(store, "w1", clock, target, **kw)
    return worker, store, clock


def enqueue(store: FakeStore, sub: str, *ids: str) -> None:
    for i in ids:
        event = {"specversion": "1.0", "id": i, "source": "/s", "type": "t"}
        ensureDeferred(store.enqueue(f"k{i}", event, [sub])).addErrback(print)


def test_posts_each_delivery_once_with_its_headers() -> None:
    """A poke posts the due deliveries: the event whole, content type and stable id."""
    target = Target()
    worker, store, _ = make(target)
    sub = store.add_subscription("$", "http://t.example/in")
    enqueue(store, sub.uuid, "a", "b", "c")
    worker.start()
    assert target.ids() == ["a", "b", "c"]
    url, event, headers = target.posts[0]
    assert url == "http://t.example/in" and event["source"] == "/s"
    assert headers["Content-Type"] == "application/cloudevents+json"
    assert headers["Ion-Delivery-Id"] == store.rows[0].id
    assert all(r.delivered for r in store.rows)


def test_order_within_a_subscription_and_parallel_across() -> None:
    """One post at a time per subscription, in order; subscriptions go side by side."""
    target = Target(status=None)
    worker, store, _ = make(target)
    s1, s2 = store.add_subscription("$"), store.add_subscription("$")
    enqueue(store, s1.uuid, "1a", "1b")
    enqueue(store, s2.uuid, "2a", "2b")
    worker.start()
    assert sorted(target.ids()) == ["1a", "2a"]
    target.waiting.pop(0).callback(200)
    assert target.ids()[-1] in ("1b", "2b") and len(target.posts) == 3
    while target.waiting:
        target.waiting.pop(0).callback(200)
    assert sorted(target.ids()) == ["1a", "1b", "2a", "2b"]
    assert target.ids().index("1a") < target.ids().index("1b")


def test_failure_retries_after_backoff_keeping_order() -> None:
    """A failed post is retried after the backoff with the same delivery id; the
    later delivery of that subscription waits for it."""
    target = Target(status=503)
    worker, store, clock = make(target, backoff=0.5, backoff_max=30.0, poll=100.0)
    sub = store.add_subscription("$")
    enqueue(store, sub.uuid, "a", "b")
    worker.start()
    assert target.ids() == ["a"]
    clock.advance(0.49)
    assert target.ids() == ["a"]
    target.status = 200
    clock.advance(0.01)  # 0.5 s: the first retry
    assert target.ids() == ["a", "a", "b"]
    assert target.posts[0][2]["Ion-Delivery-Id"] == target.posts[1][2]["Ion-Delivery-Id"]
    assert store.rows[0].attempts == 1 and store.rows[0].errors == ["the target answered 503"]


def test_backoff_doubles_up_to_its_cap_with_full_jitter() -> None:
    """The delay is random() times min(backoff_max, backoff * 2**attempts)."""
    worker, _, _ = make(Target(), backoff=0.5, backoff_max=30.0, random=lambda: 1.0)
    assert [worker.delay(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    half, _, _ = make(Target(), backoff=0.5, backoff_max=30.0, random=lambda: 0.5)
    assert half.delay(3) == 2.0


def test_parks_after_max_attempts() -> None:
    """The last failed attempt parks the delivery and sets the subscription's error;
    retry_parked delivers it."""
    target = Target(status=500)
    worker, store, clock = make(target, max_attempts=3, backoff=1.0, poll=1000.0)
    sub = store.add_subscription("$")
    enqueue(store, sub.uuid, "a", "b")
    worker.start()
    clock.advance(1.0)
    clock.advance(2.0)
    assert target.ids() == ["a", "a", "a"]
    assert store.rows[0].parked and "attempt 3 of 3" in store.subscriptions[sub.uuid].error
    clock.advance(500)
    assert len(target.posts) == 3  # parked: nothing more for this subscription
    target.status = 200
    ensureDeferred(store.retry_parked(sub.uuid))
    worker.poke()
    assert target.ids() == ["a", "a", "a", "a", "b"]


def test_refused_target_parks_at_once() -> None:
    """A target the allow-list refuses when its post connects (the poster's
    endpoints, ion.gateway.webhook) is not posted to, and parks."""
    refused = HttpError(400, "target_url", "hooks.example resolves to 10.0.0.7, a private address")
    worker, store, _ = make(lambda *a: _failing(refused), poll=99.0)
    sub = store.add_subscription("$")
    enqueue(store, sub.uuid, "a")
    worker.start()
    assert store.rows[0].parked
    assert (
        "target refused: hooks.example resolves to 10.0.0.7" in store.subscriptions[sub.uuid].error
    )


def test_timeout_is_a_failed_attempt() -> None:
    """No answer within the timeout fails the attempt (and cancels the post)."""
    target = Target(status=None)
    worker, store, clock = make(target, timeout=10.0, backoff=1.0, poll=1000.0)
    sub = store.add_subscription("$")
    enqueue(store, sub.uuid, "a")
    worker.start()
    clock.advance(10.0)
    assert store.rows[0].errors == ["no answer within the timeout"]
    assert not worker.in_flight


def test_connection_error_is_a_failed_attempt() -> None:
    """A poster that fails (connection refused) fails the attempt, named."""
    worker, store, _ = make(lambda *a: _failing(ConnectionRefusedError("refused")), poll=99.0)
    sub = store.add_subscription("$")
    enqueue(store, sub.uuid, "a")
    worker.start()
    assert store.rows[0].errors[0].startswith("ConnectionRefusedError")


def test_a_name_that_does_not_resolve_when_posted_is_retried_not_parked() -> None:
    """The poster's own lookup failing is a failed attempt, retried: only a refused
    address parks."""
    gone = Unresolved(400, "target_url", "the host 'hooks.example' does not resolve")
    worker, store, _ = make(lambda *a: _failing(gone), poll=99.0)
    sub = store.add_subscription("$")
    enqueue(store, sub.uuid, "a")
    worker.start()
    assert store.rows[0].errors == ["the host 'hooks.example' does not resolve"]
    assert not store.rows[0].parked


async def _failing(e: Exception) -> int:
    raise e


def test_concurrency_bounds_posts_under_way() -> None:
    """No more than concurrency posts at once."""
    target = Target(status=None)
    worker, store, _ = make(target, concurrency=2)
    for _ in range(5):
        enqueue(store, store.add_subscription("$").uuid, "x")
    worker.start()
    assert len(target.waiting) == 2
    target.waiting.pop(0).callback(200)
    assert len(target.waiting) == 2 and len(target.posts) == 3


def test_poll_finds_work_enqueued_elsewhere_and_expired_leases() -> None:
    """Without a poke, the poll finds deliveries (another instance's, or ones whose
    lease expired) and posts them."""
    target = Target()
    worker, store, clock = make(target, poll=1.0, lease=30.0)
    sub = store.add_subscription("$")
    worker.start()
    enqueue(store, sub.uuid, "a")
    ensureDeferred(store.claim("dead-worker", clock.seconds(), 30.0, 10))
    clock.advance(1.0)
    assert target.posts == []  # leased to another worker
    clock.advance(29.0)
    assert target.ids() == ["a"]


def test_stop_waits_for_posts_and_claims_no_more() -> None:
    """stop() waits for the post under way; nothing is claimed afterwards."""
    target = Target(status=None)
    worker, store, clock = make(target)
    sub = store.add_subscription("$")
    enqueue(store, sub.uuid, "a", "b")
    worker.start()
    stopped = ensureDeferred(worker.stop())
    assert not stopped.called
    target.waiting.pop(0).callback(200)
    assert stopped.called
    clock.advance(100)
    assert target.ids() == ["a"] and clock.getDelayedCalls() == []


def test_auth_headers_in_pacificas_forms() -> None:
    """basic and header auth become an Authorization header, as Pacifica sends them."""
    basic = auth_headers({"type": "basic", "basic": {"username": "u", "password": "p"}})
    assert basic == {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()}
    header = auth_headers({"type": "header", "header": {"type": "Bearer", "credentials": "t"}})
    assert header == {"Authorization": "Bearer t"}
    assert auth_headers({}) == {} and auth_headers(None) == {}


def test_auth_is_sent() -> None:
    """The subscription's auth goes with each post."""
    target = Target()
    worker, store, _ = make(target)
    sub = store.add_subscription("$", auth={"type": "header",
                                            "header": {"type": "Token", "credentials": "x"}})  # fmt: skip
    enqueue(store, sub.uuid, "a")
    worker.start()
    assert target.posts[0][2]["Authorization"] == "Token x"


def test_made_due_again_while_its_post_winds_up() -> None:
    """A delivery retried (unparked) while the post that parked it is still ending
    is posted again once that post has ended, not left leased."""
    target = Target(status=500)
    worker, store, _ = make(target, max_attempts=1, poll=1000.0)
    sub = store.add_subscription("$")
    enqueue(store, sub.uuid, "a")
    failed = store.failed

    async def failed_then_retried(*args: Any) -> None:
        await failed(*args)
        target.status = 200
        await store.retry_parked(sub.uuid)  # the API call, before the worker is done
        worker.poke()

    store.failed = failed_then_retried  # type: ignore[method-assign]
    worker.start()
    assert target.ids() == ["a", "a"] and store.rows[0].delivered


def test_subscription_extensions_are_merged_as_pacifica_does() -> None:
    """A subscription's extensions go into the posted event's extensions member;
    without any, the event is posted as it came."""
    from types import SimpleNamespace

    from ion.gateway.delivery import posted_event

    event = {"id": "a", "extensions": {"x": 1, "y": 1}}
    plain = SimpleNamespace(event=event, extensions=None)
    assert posted_event(plain) is event
    merged = posted_event(SimpleNamespace(event=event, extensions={"y": 2, "z": 3}))
    assert merged["extensions"] == {"x": 1, "y": 2, "z": 3}
    assert event["extensions"] == {"x": 1, "y": 1}  # the stored event is not changed
