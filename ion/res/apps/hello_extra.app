# A second HelloService process. It serves the same service name, so the two
# share the service's queue and take requests round robin; it needs `hello`.
type: application
name: hello_extra
version: "0.1"
description: a second HelloService process, sharing the hello service's queue
mod: [ion.core.pack.processapp, [hello_extra, ion.services.hello.service, HelloService]]
applications: [ioncore, [hello, "0.1"]]
config: {}
