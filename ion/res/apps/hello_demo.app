# The demo's top app: a third HelloService process, started after `hello` and
# `hello_extra` (a diamond: hello_extra needs hello too; hello starts once).
type: application
name: hello_demo
version: "0.1"
description: a third HelloService process, on top of hello and hello_extra
mod: [ion.core.pack.processapp, [hello_demo, ion.services.hello.service, HelloService]]
applications: [ioncore, hello, hello_extra]
config:
  container:
    rpc_timeout: 10.0
