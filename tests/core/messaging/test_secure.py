"""broker.secure: the system exchange's type and container ids under the broker user."""

from __future__ import annotations

from typing import Any

import pytest

from ion.core.cc.container import Container
from ion.core.config import DEFAULTS, Config
from ion.core.exception import ConfigurationError
from ion.core.messaging.secure import container_id, is_secure, system_exchange_type


def _config(
    secure: Any = True, url: str = "amqp://cc1:pw@127.0.0.1:5672/lab", **more: Any
) -> Config:
    return Config(DEFAULTS).merged({"broker": {"url": url, "secure": secure, **more}})


def test_off_by_default_direct_exchange_ids_unchanged() -> None:
    config = Config(DEFAULTS)
    assert not is_secure(config) and system_exchange_type(config) == "direct"
    assert container_id(config, "host_12") == "host_12"


@pytest.mark.parametrize(
    "given, expected",
    [("cc1", "cc1"), ("cc1.host_12", "cc1.host_12"), ("host_12", "cc1.host_12"),
     ("cc10", "cc1.cc10"), ("cc1-x", "cc1.cc1-x")],
)  # fmt: skip
def test_secure_ids_carry_the_broker_user(given: str, expected: str) -> None:
    config = _config()
    assert system_exchange_type(config) == "topic"
    assert container_id(config, given) == expected


def test_user_from_broker_username_setting() -> None:
    config = _config(url="amqp://127.0.0.1:5672/lab", username="app7", password="x")
    assert container_id(config, "h") == "app7.h"


def test_secure_not_a_bool_names_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="broker.secure: expected true or false"):
        is_secure(_config(secure="yes"))


def test_secure_on_the_embedded_broker_refused() -> None:
    with pytest.raises(ConfigurationError, match="broker.secure: needs RabbitMQ"):
        Container(config=_config(url="local"))


def test_container_id_under_the_user() -> None:
    container = Container(config=_config(), container_id="worker")
    assert container.id == "cc1.worker"
    assert container.exchange.exchange_type == "topic"
