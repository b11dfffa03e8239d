"""ion.core.pack."""
