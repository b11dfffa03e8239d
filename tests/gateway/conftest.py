"""Fixtures of the gateway tests."""

# A gateway store on SQLite, then on PostgreSQL (tests/gateway/stores.py).
from tests.gateway.stores import make_store  # noqa: F401
