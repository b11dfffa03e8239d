# The HTTP gateway (opt-in): service ops over HTTP (POST /rpc/<service>/<op>), the
# routes services declare, /openapi.json, and, where installed, subscriptions and
# CloudEvents. It listens on gateway.http (twistd cc --http HOST:PORT); see
# res/config/ion.yml and ion.gateway.config for its keys.
type: application
name: gateway
version: "0.1"
description: the HTTP gateway (service ops, declared routes, OpenAPI)
mod: [ion.core.pack.processapp, [gateway, ion.gateway.process, Gateway], {}]
modules: [ion.gateway.process]
registered: []  # (a process, not a service: nothing is registered)
applications: [ioncore]
config: {}
