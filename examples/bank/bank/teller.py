"""The teller service: takes withdrawals and deposits, books them with the
ledger, and announces each change as an event.
"""

from __future__ import annotations

from typing import Any

from bank.bank_pb2 import Account, Withdrawal
from bank.ledger import LedgerClient, owner_and_amount
from ion.core.events import EventPublisher
from ion.core.exception import Refuse, RequestRefused
from ion.core.object.event_ids import EventId
from ion.core.process.service import ServiceClient, ServiceProcess

ORIGIN = "bank"  # the origin of the teller's events


class AccountEventPublisher(EventPublisher):
    """Publishes account changes (resource modification events, id 1112)."""

    event_id = EventId.BUSINESS_STATE_MODIFICATION


class TellerService(ServiceProcess):
    """Withdraws (a Withdrawal object) and deposits through the ledger."""

    declare = ServiceProcess.service_declare(
        name="teller", version="0.1.0", dependencies=["ledger"]
    )

    def on_init(self) -> None:
        self.ledger = LedgerClient(proc=self)
        self.publisher = AccountEventPublisher(self, origin=ORIGIN)

    async def op_withdraw(self, content: Any, headers: dict[str, Any], msg: Any) -> Account:
        """Withdraw; answer the account after, or a 403 error if the ledger refused."""
        owner, amount = owner_and_amount(content)
        try:
            account = await self.ledger.debit(owner, amount)
        except RequestRefused as e:
            raise Refuse(f"withdrawal refused: {e.content.get('message')}") from e
        await self._announce_change(account, "withdrawn", amount)
        return account

    async def op_deposit(self, content: Any, headers: dict[str, Any], msg: Any) -> Account:
        """Deposit; answer the account after."""
        owner, amount = owner_and_amount(content)
        account = await self.ledger.credit(owner, amount)
        await self._announce_change(account, "deposited", amount)
        return account

    async def _announce_change(self, account: Account, state: str, amount: int) -> None:
        await self.publisher.create_and_publish_event(
            resource_id=account.owner,
            fields=["balance"],
            state=state,
            description=f"{amount} {state}; balance {account.balance}",
        )


class TellerClient(ServiceClient):
    """Calls the teller service."""

    targetname = "teller"

    async def withdraw(self, owner: str, amount: int) -> Account:
        """The account after the withdrawal; raises L{ReceivedError} (code 403) if refused."""
        return await self.rpc_send("withdraw", Withdrawal(owner=owner, amount=amount))

    async def deposit(self, owner: str, amount: int) -> Account:
        return await self.rpc_send("deposit", {"owner": owner, "amount": amount})
