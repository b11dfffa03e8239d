"""An app module that fails as it is imported, with something other than ImportError."""

raise RuntimeError("badimport refuses to load")
