"""The HTTP gateway: service ops over HTTP, CloudEvents in, subscriptions and webhooks out.

L{ion.gateway.process.Gateway} is the process (app C{gateway}) that owns the
parts: the config (L{ion.gateway.config}), the HTTP site (L{ion.gateway.web},
L{ion.gateway.auth}), the routes (L{ion.gateway.rpc}, L{ion.gateway.routes},
L{ion.gateway.openapi}) and, where present, the store, subscriptions, receiver
and delivery worker.
"""
