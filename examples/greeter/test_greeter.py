"""The greeter under trial, as its author tests it: `python -m twisted.trial test_greeter`."""

from __future__ import annotations

from greeter import GreeterClient

from ion.core.exception import ReceivedError
from ion.services.hello.service import HelloServiceClient
from ion.test.trial import IonTestCase

GREETER = {"name": "greeter", "module": "greeter", "class": "GreeterService"}


class GreeterTest(IonTestCase):
    async def setUp(self) -> None:
        await self._start_container(start_apps=["hello"])
        await self._spawn_processes([GREETER])

    async def tearDown(self) -> None:
        await self._stop_container()

    async def test_hello_client_with_no_arguments(self) -> None:
        self.assertEqual(await HelloServiceClient().hello("you"), "Hello there, you")

    async def test_a_handler_calls_with_a_client_of_no_arguments(self) -> None:
        self.assertEqual(await GreeterClient().greet("Ada"), "Hello there, Ada")

    async def test_a_handler_that_raises_answers_500(self) -> None:
        with self.assertRaises(ReceivedError) as caught:
            await GreeterClient().broken()
        self.assertEqual(caught.exception.content["code"], 500)
        self.assertIn("the greeter is broken", caught.exception.content["message"])

    async def test_an_async_handler_that_raises_answers_500(self) -> None:
        with self.assertRaises(ReceivedError) as caught:
            await GreeterClient().broken_later("missing")
        self.assertEqual(caught.exception.content["code"], 500)

    async def test_the_greeter_keeps_working_after_raising(self) -> None:
        client = GreeterClient()
        with self.assertRaises(ReceivedError):
            await client.broken()
        self.assertEqual(await client.greet("again"), "Hello there, again")
