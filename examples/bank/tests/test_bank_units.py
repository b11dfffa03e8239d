"""Unit tests of the bank's services, without a broker: one process each, its clients faked."""

from __future__ import annotations

from bank.bank_pb2 import Account, Withdrawal
from bank.ledger import LedgerService
from bank.teller import TellerService

from ion.core.exception import RequestRefused
from ion.test import call_op


async def test_teller_withdraws_through_the_ledger_and_announces_it(ion_process_factory):
    """The teller debits the (fake) ledger, answers the account after, and publishes an event."""
    teller = await ion_process_factory(TellerService)
    teller.ledger.debit.return_value = Account(owner="alice", balance=7000)

    reply = await call_op(teller, "withdraw", Withdrawal(owner="alice", amount=3000))

    assert reply.ok
    assert reply.content == Account(owner="alice", balance=7000)
    teller.ledger.debit.assert_awaited_once_with("alice", 3000)
    [event] = [e for e in teller.container.exchange.events if e.origin == "bank"]
    assert event.resource_modification.resource_id == "alice"
    assert event.resource_modification.state == "withdrawn"


async def test_teller_answers_403_when_the_ledger_refuses(ion_process_factory):
    """A refused debit becomes a 403 error for the teller's caller, and no event."""
    teller = await ion_process_factory(TellerService)
    refusal = {"code": 403, "type": "Refuse", "message": "insufficient funds"}
    teller.ledger.debit.side_effect = RequestRefused({"performative": "refuse"}, refusal)

    reply = await call_op(teller, "withdraw", {"owner": "bob", "amount": 5000})

    assert not reply.ok
    assert reply.error_code == 403
    assert "insufficient funds" in reply.content["message"]
    assert not [e for e in teller.container.exchange.events if e.origin == "bank"]


async def test_ledger_agrees_to_a_covered_debit(ion_process_factory):
    """A debit the balance covers is agreed to, then answered with the new balance."""
    ledger = await ion_process_factory(LedgerService, args={"opening_balances": {"alice": 100}})

    reply = await call_op(ledger, "debit", {"owner": "alice", "amount": 40}, protocol="request")

    assert reply.agreed and reply.ok
    assert reply.content.balance == 60


async def test_ledger_refuses_an_uncovered_debit(ion_process_factory):
    """A debit larger than the balance is refused and the balance stays."""
    ledger = await ion_process_factory(LedgerService, args={"opening_balances": {"bob": 10}})

    reply = await call_op(ledger, "debit", {"owner": "bob", "amount": 40}, protocol="request")

    assert reply.refused and not reply.agreed
    assert ledger.balances["bob"] == 10
