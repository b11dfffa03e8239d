# The teller service; it needs the ledger app, which starts first.
type: application
name: teller
version: "0.1"
description: the bank's teller (withdrawals and deposits, announced as events)
mod: [ion.core.pack.processapp, [teller, bank.teller, TellerService], {}]
modules: [bank.teller]
registered: [teller]
applications: [ioncore, ledger]
config: {}
