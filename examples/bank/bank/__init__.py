"""The bank example: a ledger service and a teller service that calls it.

Importing the package registers its object types (L{bank.bank_pb2}) with ion,
so Account and Withdrawal objects can travel in messages.
"""

from bank import bank_pb2
from ion.core.object.registry import default_registry

default_registry().register_module(bank_pb2)
