"""An app module whose check() fails with a KeyError, as a careless lookup does."""

from __future__ import annotations

from typing import Any


def check(app_definition: Any, **kwargs: Any) -> None:
    """Look up a setting the app does not have."""
    kwargs["needed"]


def start(container: Any, starttype: str, app_definition: Any, **kwargs: Any) -> None:
    """Never reached: check fails first."""
    raise AssertionError("start of an app whose check failed")
