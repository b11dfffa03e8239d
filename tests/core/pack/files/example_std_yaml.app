# The same app as example_std.app, in YAML (its name differs from the file on purpose: loaded directly, not by name).
type: application
name: example_std
description: Example application with standard process app
version: "0.1"
mod:
  - ion.core.pack.processapp
  - [hello_service, ion.play.hello_service, HelloService]
  - {firstSpawnArg: Here}
modules: [ion.zapps.example]
registered: [example]
applications: [ioncore, ccagent]
config:
  ion.play.hello_service: {greeting: null, loud: true}
