"""twistd dropin: C{twistd cc} runs an ion capability container (see ion.core.cc.tap)."""

from twisted.application.service import ServiceMaker

ionCapabilityContainer = ServiceMaker(
    "ion capability container", "ion.core.cc.tap", "Run an ion capability container.", "cc"
)
