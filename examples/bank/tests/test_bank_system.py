"""The bank release running in containers: on the embedded broker by default,
on RabbitMQ with `--ion-broker=amqp` (both: `--ion-broker=local,amqp`)."""

from __future__ import annotations

import pytest
from bank.bank_pb2 import Account
from bank.ledger import LedgerClient
from bank.teller import ORIGIN, TellerClient

from ion.core.exception import ReceivedError
from ion.core.object.event_ids import EventId
from ion.test import RecordingProcess, call_op, next_op

BANK = pytest.mark.ion_container(rel="res/deploy/bank.rel")


async def _event_recorder(container):
    recorder = await container.spawn(RecordingProcess)
    await recorder.subscribe(EventId.BUSINESS_STATE_MODIFICATION, origin=ORIGIN)
    return recorder


@BANK
async def test_withdrawal_is_booked_and_announced(ion_container):
    """A covered withdrawal lowers the balance and publishes a 'withdrawn' event."""
    recorder = await _event_recorder(ion_container)
    teller = TellerClient(container=ion_container)

    account = await teller.withdraw("alice", 3000)

    assert account == Account(owner="alice", balance=7000)
    [event] = await recorder.events.wait(1)
    assert event.resource_modification.resource_id == "alice"
    assert event.resource_modification.state == "withdrawn"


@BANK
async def test_uncovered_withdrawal_is_refused(ion_container):
    """A withdrawal larger than the balance fails with 403 and leaves the balance as it was."""
    teller = TellerClient(container=ion_container)

    with pytest.raises(ReceivedError) as caught:
        await teller.withdraw("bob", 5000)

    assert caught.value.content["code"] == 403
    assert (await LedgerClient(container=ion_container).balance("bob")).balance == 2000


@BANK
async def test_teller_asks_the_ledger_in_a_request_conversation(ion_container):
    """The teller's withdrawal reaches the ledger's debit op as a request conversation."""
    ledger = ion_container.proc_manager.find("ledger")
    debit = next_op(ledger, "debit")

    await TellerClient(container=ion_container).withdraw("alice", 100)

    call = await debit
    assert call.headers["protocol"] == "request"
    assert call.content == {"owner": "alice", "amount": 100}


@BANK
async def test_ledger_debit_agrees_or_refuses(ion_container):
    """Called directly, the ledger agrees to a covered debit and refuses an uncovered one."""
    ledger = ion_container.proc_manager.find("ledger")

    agreed = await call_op(ledger, "debit", {"owner": "bob", "amount": 500}, protocol="request")
    refused = await call_op(ledger, "debit", {"owner": "bob", "amount": 5000}, protocol="request")

    assert agreed.agreed and agreed.content.balance == 1500
    assert refused.refused and refused.error_code == 403


async def test_services_in_two_containers_of_one_system(ion_container_factory):
    """A teller app in one container books with the ledger app in another container of the
    system: the teller needs the ledger service and does not start a ledger of its own."""
    first = await ion_container_factory(apps=["ledger"])
    second = await ion_container_factory(apps=["teller"])
    await LedgerClient(container=first).credit("carol", 800)

    account = await TellerClient(container=second).withdraw("carol", 300)

    assert account.balance == 500
    assert second.proc_manager.find("ledger") is None
    assert first.proc_manager.find("teller") is None
