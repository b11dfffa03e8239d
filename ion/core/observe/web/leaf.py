"""The base of the web view's leaf resources: each answers for the view it serves."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.web.resource import Resource

if TYPE_CHECKING:
    from ion.core.observe.web.service import WebView


class ViewLeaf(Resource):
    """A resource that takes the rest of its path itself, for the view C{view}."""

    isLeaf = True

    def __init__(self, view: WebView) -> None:
        super().__init__()
        self.view = view
