"""The hello service and its client."""

from ion.services.hello.service import HelloService, HelloServiceClient

__all__ = ["HelloService", "HelloServiceClient"]
