"""The ledger service: account balances. Debits are a request conversation.

A debit is agreed to (then done, and the new balance is the result) when the
account holds enough, and refused otherwise.
"""

from __future__ import annotations

from typing import Any

from bank.bank_pb2 import Account
from ion.core.exception import BadRequest, NotFound, Refuse
from ion.core.process.service import ServiceClient, ServiceProcess


def owner_and_amount(content: Any) -> tuple[str, int]:
    """The C{owner} and C{amount} of a request (a dict or an object with those fields)."""
    get = content.get if isinstance(content, dict) else lambda k: getattr(content, k, None)
    owner, amount = get("owner"), get("amount")
    if not isinstance(owner, str) or not owner:
        raise BadRequest("a request needs an 'owner'")
    if not isinstance(amount, int) or amount <= 0:
        raise BadRequest(f"amount must be a positive number of cents, not {amount!r}")
    return owner, amount


class LedgerService(ServiceProcess):
    """Keeps balances in cents; spawn arg C{opening_balances} seeds them."""

    declare = ServiceProcess.service_declare(name="ledger", version="0.1.0")

    def on_init(self) -> None:
        self.balances: dict[str, int] = dict(self.args.get("opening_balances") or {})

    def _account(self, owner: str) -> Account:
        if owner not in self.balances:
            raise NotFound(f"no account {owner!r}")
        return Account(owner=owner, balance=self.balances[owner])

    def op_balance(self, content: Any, headers: dict[str, Any], msg: Any) -> Account:
        """The account of owner C{content['owner']}."""
        return self._account(content["owner"] if isinstance(content, dict) else content)

    def op_credit(self, content: Any, headers: dict[str, Any], msg: Any) -> Account:
        """Add C{amount} to C{owner}'s account (opening it if new); the account after."""
        owner, amount = owner_and_amount(content)
        self.balances[owner] = self.balances.get(owner, 0) + amount
        return self._account(owner)

    async def op_debit(self, content: Any, headers: dict[str, Any], msg: Any) -> Account:
        """Take C{amount} from C{owner}'s account: agree and do it, or refuse if short."""
        owner, amount = owner_and_amount(content)
        account = self._account(owner)
        if account.balance < amount:
            raise Refuse(f"insufficient funds: {owner} has {account.balance}, needs {amount}")
        await self.reply_agree(msg)
        self.balances[owner] -= amount
        return self._account(owner)


class LedgerClient(ServiceClient):
    """Calls the ledger service."""

    targetname = "ledger"

    async def balance(self, owner: str) -> Account:
        return await self.rpc_send("balance", {"owner": owner})

    async def credit(self, owner: str, amount: int) -> Account:
        return await self.rpc_send("credit", {"owner": owner, "amount": amount})

    async def debit(self, owner: str, amount: int) -> Account:
        """Debit in a request conversation; raises L{RequestRefused} when funds are short."""
        return await self.request("debit", {"owner": owner, "amount": amount})
