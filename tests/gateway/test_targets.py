"""Webhook target checks (ion.gateway.targets)."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor

from ion.gateway import targets
from ion.gateway.targets import check_target, check_target_resolved
from ion.gateway.web import HttpError


def refused(url: Any, allow: Any = ()) -> str:
    with pytest.raises(HttpError) as info:
        check_target(url, allow)
    assert info.value.status == 400
    assert info.value.field == "target_url"
    return info.value.message


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",
        "https://example.com:8443/a?b=c",
        "http://93.184.215.14/",
        "http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/x",
        "HTTP://Example.COM./",
    ],
)
def test_public_targets_pass(url: str) -> None:
    """http(s) URLs on public names or addresses are accepted."""
    check_target(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/",
        "http://127.1/",
        "http://2130706433/",
        "http://0x7f.0.0.1/",
        "http://0.0.0.0/",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",
        "http://[::1]/",
        "http://[::]/",
        "http://[fe80::1%25eth0]/",
        "http://[fc00::1]/",
        "http://[ff02::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:10.0.0.1]/",
        "http://localhost:8080/",
        "http://api.localhost/",
    ],
)
def test_internal_addresses_are_refused(url: str) -> None:
    """Loopback, private, link-local, shared, multicast, unspecified and reserved
    addresses (IPv4, IPv6, mapped, old IPv4 forms, localhost) are refused."""
    assert "not a public address" in refused(url)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://example.com/", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("gopher://example.com/", "http or https"),
        ("example.com/hook", "http or https"),
        ("http:///path", "no host"),
        ("http://", "no host"),
        ("http://example.com:99999/", "not a URL"),
        ("http://user:pw@example.com/", "credentials"),
        ("http://exa mple.com/", "spaces"),
        ("http://example.com/\n", "control"),
        ("http://example.com/" + "a" * 3000, "longer"),
        (42, "string"),
        (None, "string"),
    ],
)
def test_bad_urls_are_refused(url: Any, words: str) -> None:
    """Other schemes, no host, a bad port, credentials, odd characters, length: 400."""
    assert words in refused(url)


def test_allow_targets_lets_listed_networks_through() -> None:
    """Addresses inside a configured CIDR pass; others stay refused."""
    allow = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("fd00::/8"))
    check_target("http://127.0.0.1:9000/hook", allow)
    check_target("http://localhost:9000/hook", allow)
    check_target("http://[fd00::5]/", allow)
    check_target("http://[::ffff:127.0.0.1]/", allow)
    refused("http://10.0.0.1/", allow)
    refused("http://[::1]/", allow)


def fake_dns(monkeypatch: Any, table: dict[str, list[str]]) -> None:
    """Resolve names from C{table} (unknown names fail as getaddrinfo does)."""

    def getaddrinfo(host: str, port: Any, *args: Any) -> list[Any]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(0, 0, 0, "", (a, 0)) for a in table[host]]

    monkeypatch.setattr(targets.socket, "getaddrinfo", getaddrinfo)


@pytest_twisted.ensureDeferred
async def test_resolved_names_are_judged_by_every_address(monkeypatch: Any) -> None:
    """A name is refused when any address it resolves to is internal, unless listed."""
    fake_dns(
        monkeypatch,
        {
            "public.example": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
            "sneaky.example": ["93.184.215.14", "10.0.0.7"],
            "inside.example": ["fe80::1%eth0"],
        },
    )
    await check_target_resolved("http://public.example/hook", (), reactor)
    for name, shown in [("sneaky.example", "10.0.0.7"), ("inside.example", "fe80::1")]:
        with pytest.raises(HttpError) as info:
            await check_target_resolved(f"http://{name}/hook", (), reactor)
        assert info.value.field == "target_url"
        assert f"{name} resolves to {shown}" in info.value.message
    await check_target_resolved(
        "http://sneaky.example/hook", (ipaddress.ip_network("10.0.0.0/24"),), reactor
    )
    with pytest.raises(HttpError) as info:
        await check_target_resolved("http://nowhere.invalid/", (), reactor)
    assert "does not resolve" in info.value.message
    await check_target_resolved("http://nowhere.invalid/", (), reactor, allow_unresolved=True)


@pytest_twisted.ensureDeferred
async def test_resolved_check_still_refuses_literals_and_schemes() -> None:
    """The resolving check applies the plain checks first (no lookup for literals)."""
    for url in ["http://127.0.0.1/", "ftp://example.com/"]:
        with pytest.raises(HttpError):
            await check_target_resolved(url, (), reactor)
