"""ion.core."""
