"""ion.test."""
