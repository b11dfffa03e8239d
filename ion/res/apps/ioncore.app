# The base app: every container starts it first, before any other app.
type: application
name: ioncore
version: "0.1"
description: ion core bootstrap (container args, sysname)
mod: [ion.core.pack.ioncore_app]
applications: []
config: {}
