"""The bank under trial, with ion's IonTestCase (the original's test base class).

The broker is $ION_TEST_BROKER (local by default; 'amqp' for RabbitMQ).
"""

from __future__ import annotations

from pathlib import Path

from bank.bank_pb2 import Account
from bank.ledger import LedgerClient, LedgerService
from bank.teller import TellerClient

from ion.core.exception import ReceivedError
from ion.core.object.event_ids import EventId
from ion.test import RecordingProcess, call_op, next_op, process_factory
from ion.test.trial import IonTestCase

ROOT = Path(__file__).resolve().parents[1]  # examples/bank, which holds res/


class BankReleaseTest(IonTestCase):
    """The whole release in one container."""

    root = ROOT

    async def setUp(self) -> None:
        await self._start_container(rel="res/deploy/bank.rel")

    async def tearDown(self) -> None:
        await self._stop_container()

    async def test_withdrawal_is_booked_and_announced(self) -> None:
        """A covered withdrawal lowers the balance and publishes a 'withdrawn' event."""
        recorder = await self.container.spawn(RecordingProcess)
        await recorder.subscribe(EventId.BUSINESS_STATE_MODIFICATION, origin="bank")

        account = await TellerClient(proc=self.test_sup).withdraw("alice", 2500)

        self.assertEqual(account, Account(owner="alice", balance=7500))
        [event] = await recorder.events.wait(1)
        self.assertEqual(event.resource_modification.state, "withdrawn")

    async def test_uncovered_withdrawal_is_refused(self) -> None:
        """A withdrawal larger than the balance fails with 403; the ledger keeps the balance."""
        with self.assertRaises(ReceivedError) as caught:
            await TellerClient(proc=self.test_sup).withdraw("bob", 9999)
        self.assertEqual(caught.exception.content["code"], 403)
        ledger = self._get_procinstance(self._get_procid("ledger"))
        self.assertEqual(ledger.balances["bob"], 2000)

    async def test_teller_asks_the_ledger_in_a_request_conversation(self) -> None:
        """The withdrawal reaches the ledger's debit op in a request conversation."""
        debit = next_op(self._get_procinstance(self._get_procid("ledger")), "debit")
        await TellerClient(proc=self.test_sup).withdraw("alice", 1)
        call = await debit
        self.assertEqual(call.headers["protocol"], "request")


class BankProcessesTest(IonTestCase):
    """The ledger app, and the teller spawned from a process description."""

    root = ROOT

    async def test_spawned_teller_uses_the_ledger_app(self) -> None:
        """A teller spawned with _spawn_processes books deposits with the ledger app."""
        await self._start_container(start_apps=["ledger"])
        await self._spawn_processes(
            [{"name": "teller", "module": "bank.teller", "class": "TellerService"}]
        )
        self.assertIsNotNone(self._get_procid("teller"))

        account = await TellerClient(proc=self.test_sup).deposit("dave", 42)

        self.assertEqual(account.balance, 42)
        balance = await LedgerClient(proc=self.test_sup).balance("dave")
        self.assertEqual(balance.balance, 42)
        await self._stop_container()


class LedgerUnitTest(IonTestCase):
    """The ledger alone, offline: no container, no broker."""

    async def test_debit_is_agreed_then_done(self) -> None:
        """A covered debit is agreed to and answered with the new balance."""
        ledger = await process_factory(LedgerService, args={"opening_balances": {"eve": 10}})
        try:
            reply = await call_op(
                ledger, "debit", {"owner": "eve", "amount": 4}, protocol="request"
            )
        finally:
            await ledger.container.stop()
        self.assertTrue(reply.agreed)
        self.assertEqual(reply.content.balance, 6)
