"""Security: signed messages (the system key ring), and who may call what (policy)."""
