"""ion.services."""
