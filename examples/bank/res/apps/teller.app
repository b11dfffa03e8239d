# The teller service. It calls the ledger service, served in this container or
# another of the system: `needs:` waits for it (pack.needs_timeout) and starts
# nothing; `applications:` would start the ledger app here, a second ledger.
type: application
name: teller
version: "0.1"
description: the bank's teller (withdrawals and deposits, announced as events)
mod: [ion.core.pack.processapp, [teller, bank.teller, TellerService], {}]
modules: [bank.teller]
registered: [teller]
applications: [ioncore]
needs: [ledger]
config: {}
