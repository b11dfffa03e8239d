"""python -m ion.gateway.sink: prints each webhook it gets and answers 204."""

from __future__ import annotations

import io

from twisted.web.test.requesthelper import DummyRequest

from ion.gateway.sink import Sink


def test_a_post_is_printed_with_its_delivery_id_and_answered_204(capsys) -> None:
    request = DummyRequest([b""])
    request.method = b"POST"
    request.requestHeaders.setRawHeaders(b"ion-delivery-id", [b"d1"])
    request.content = io.BytesIO(b'{"id": "1"}')
    assert Sink().render(request) == b""
    assert request.responseCode == 204
    assert capsys.readouterr().out == 'd1 {"id": "1"}\n'
