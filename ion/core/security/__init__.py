"""Security: who sent a message, and whether they may."""
