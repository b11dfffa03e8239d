# The hello service: one HelloService process, through the generic process app.
# mod: [module, [args], {kwargs}]; processapp's args are (process name, module, class),
# its kwargs become the process's spawn args.
type: application
name: hello
version: "0.1"
description: the hello service (one HelloService process)
mod: [ion.core.pack.processapp, [hello, ion.services.hello.service, HelloService], {}]
modules: [ion.services.hello.service]
registered: [hello]
applications: [ioncore]
config: {}
