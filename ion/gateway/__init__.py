"""The HTTP gateway: service ops, CloudEvents in, subscriptions and webhooks out."""
