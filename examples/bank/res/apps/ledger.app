# The ledger service: one LedgerService process, through ion's generic process app.
# mod: [module, [process name, module, class], {spawn args}]
type: application
name: ledger
version: "0.1"
description: the bank's ledger (balances; debits are agreed to or refused)
mod: [ion.core.pack.processapp, [ledger, bank.ledger, LedgerService], {}]
modules: [bank.ledger]
registered: [ledger]
applications: [ioncore]
config: {}
