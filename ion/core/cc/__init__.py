"""ion.core.cc."""
