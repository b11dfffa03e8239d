"""ion.core.object."""
