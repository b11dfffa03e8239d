"""ion's command-line tools: C{ion-shell} and C{ion-rpc}."""
