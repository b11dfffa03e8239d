"""Message security: the system key ring and signed messages."""
