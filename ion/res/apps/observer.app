# The system observer (opt-in): a log of every container's messages (their taps,
# asked through the agents) and of every event (it binds # on the events
# exchange); service "observer": get_log(since), msc(n). See README, "Observer".
type: application
name: observer
version: "0.1"
description: the system observer (the whole system's messages and events)
mod: [ion.core.pack.processapp, [observer, ion.core.observe.observer, InteractionObserver], {interval: 1.0, size: 3000}]
modules: [ion.core.observe.observer]
registered: [observer]
applications: [ioncore]
config: {}
