"""ion.core.process."""
