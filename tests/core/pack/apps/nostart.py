"""An app module without a start function."""

from __future__ import annotations

from typing import Any


def stop(container: Any, state: Any) -> None:
    """There is a stop, but no start."""
