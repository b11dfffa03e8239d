"""ion: a capability container for Python 3 on Twisted."""

__version__ = "0.1.0"
