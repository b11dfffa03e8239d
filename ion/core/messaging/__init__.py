"""ion.core.messaging."""
