"""The client's address: X-Forwarded-For believed only from trusted proxies, right-most untrusted hop."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from codeconnect.clients import TrustedProxies, client_address, parse_address, rate_key, resolve_client
from codeconnect.config import Settings

PROXIES = TrustedProxies.parse("10.0.0.0/8, 2001:db8:ffff::/48, 127.0.0.1")


def test_an_untrusted_peer_is_the_client_whatever_it_sends() -> None:
    assert client_address("198.51.100.7", ["203.0.113.1"], PROXIES) == "198.51.100.7"
    assert client_address("198.51.100.7", [], TrustedProxies.parse("")) == "198.51.100.7"
    assert client_address("198.51.100.7", ["203.0.113.1"], TrustedProxies.parse("")) == "198.51.100.7"


def test_a_trusted_peer_names_the_right_most_untrusted_hop() -> None:
    # The client wrote the left part itself; 10.1.1.1 (trusted) says it got the request from 203.0.113.9.
    assert client_address("10.0.0.2", ["1.2.3.4, 203.0.113.9, 10.1.1.1"], PROXIES) == "203.0.113.9"
    assert client_address("127.0.0.1", ["203.0.113.9"], PROXIES) == "203.0.113.9"


def test_several_headers_are_one_list_in_order() -> None:
    assert client_address("10.0.0.2", ["1.2.3.4", "203.0.113.9", "10.1.1.1"], PROXIES) == "203.0.113.9"
    assert client_address("10.0.0.2", ["203.0.113.9, 10.9.9.9", ""], PROXIES) == "203.0.113.9"


def test_whitespace_ports_brackets_and_ipv6() -> None:
    assert client_address("10.0.0.2", ["  203.0.113.9:5678 ,10.0.0.3 "], PROXIES) == "203.0.113.9"
    assert client_address("10.0.0.2", ["[2001:DB8::1]:443"], PROXIES) == "2001:db8::1"
    assert client_address("10.0.0.2", ["2001:db8:0:0::1"], PROXIES) == "2001:db8::1"
    assert client_address("10.0.0.2", ['"[2001:db8::2]"'], PROXIES) == "2001:db8::2"
    assert client_address("2001:db8:ffff:1::5", ["2001:db8:1::7, 2001:db8:ffff::9"], PROXIES) == "2001:db8:1::7"
    # A dual-stack socket names an IPv4 peer ::ffff:a.b.c.d: still the trusted 10.0.0.0/8.
    assert client_address("::ffff:10.0.0.2", ["203.0.113.9"], PROXIES) == "203.0.113.9"
    assert client_address("::ffff:198.51.100.7", ["203.0.113.9"], PROXIES) == "198.51.100.7"


def test_garbage_where_the_client_belongs_stops_at_the_trusted_hop() -> None:
    # Nothing left of an entry that is no address can be believed: the hop that wrote it is the client.
    assert client_address("10.0.0.2", ["203.0.113.9, unknown, 10.1.1.1"], PROXIES) == "10.1.1.1"
    assert client_address("10.0.0.2", ["203.0.113.9, not an address"], PROXIES) == "10.0.0.2"
    assert client_address("10.0.0.2", ["203.0.113.9, 999.1.1.1"], PROXIES) == "10.0.0.2"
    assert client_address("10.0.0.2", ["[2001:db8::1"], PROXIES) == "10.0.0.2"
    # Empty entries are formatting, not addresses.
    assert client_address("10.0.0.2", ["203.0.113.9, , "], PROXIES) == "203.0.113.9"


def test_every_hop_trusted_means_the_left_most() -> None:
    assert client_address("10.0.0.2", ["10.5.5.5, 10.1.1.1"], PROXIES) == "10.5.5.5"
    assert client_address("10.0.0.2", [], PROXIES) == "10.0.0.2"


def test_a_peer_that_is_no_ip_address_is_left_alone() -> None:
    assert client_address(None, ["203.0.113.9"], PROXIES) is None
    assert client_address("testclient", ["203.0.113.9"], PROXIES) == "testclient"


def test_rate_keys_group_ipv6_by_its_64() -> None:
    assert rate_key("2001:db8:1:2:aaaa::1") == rate_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert rate_key("2001:db8:1:3::1") != rate_key("2001:db8:1:2::1")
    assert rate_key("::ffff:198.51.100.7") == rate_key("198.51.100.7") == "198.51.100.7"
    assert rate_key(None) == "unknown"


def test_resolve_client_rewrites_the_scope_for_a_trusted_peer_only() -> None:
    headers = [(b"x-forwarded-for", b"203.0.113.9")]
    scope = {"client": ("127.0.0.1", 5000), "headers": headers}
    resolve_client(scope, PROXIES)
    assert scope["client"] == ("203.0.113.9", 0)
    scope = {"client": ("198.51.100.7", 5000), "headers": headers}
    resolve_client(scope, PROXIES)
    assert scope["client"] == ("198.51.100.7", 5000)


def test_the_setting_is_validated_at_start() -> None:
    assert Settings(trusted_proxies=" 10.1.2.3/8 , ::1,").trusted_proxies == "10.0.0.0/8,::1/128"
    assert "203.0.113.9" not in Settings().trusted_proxy_networks
    assert not Settings().trusted_proxy_networks
    for bad in ("10.0.0.300", "proxy.internal", "10.0.0.0/33", "*"):
        with pytest.raises(ValidationError, match="is not an IP address or network"):
            Settings(trusted_proxies=bad)


ipv4 = st.ip_addresses(v=4)
ipv6 = st.ip_addresses(v=6)
any_ip = st.one_of(ipv4, ipv6)
junk = st.text(st.characters(blacklist_characters=","), max_size=12)


def _entry(address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int | None) -> str:
    if port is None:
        return str(address)
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


@given(any_ip, st.one_of(st.none(), st.integers(0, 65535)))
def test_an_entry_parses_back_to_its_address(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int | None
) -> None:
    expected = address
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        expected = address.ipv4_mapped
    assert parse_address(f" {_entry(address, port)} ") == expected


@given(any_ip, st.lists(st.one_of(any_ip.map(str), junk), max_size=6))
def test_an_untrusted_peer_is_never_moved_by_the_header(
    peer: ipaddress.IPv4Address | ipaddress.IPv6Address, header: list[str]
) -> None:
    nobody = TrustedProxies.parse("")
    assert client_address(str(peer), [", ".join(header)], nobody) == str(parse_address(str(peer)))


@given(
    st.lists(st.one_of(any_ip.map(str), junk), max_size=4),
    ipv4.filter(lambda a: a not in ipaddress.ip_network("10.0.0.0/8") and not a.is_loopback),
    st.lists(st.integers(0, 255), max_size=3),
)
def test_the_client_is_the_hop_the_last_trusted_proxy_saw(
    spoofed: list[str], client: ipaddress.IPv4Address, proxies: list[int]
) -> None:
    # Whatever the client puts in front, trusted proxies (10.x) append what they saw: the client's address.
    chain = [*spoofed, str(client), *(f"10.0.0.{n}" for n in proxies)]
    assert client_address("10.0.0.1", [", ".join(chain)], PROXIES) == str(client)
    assert client_address("10.0.0.1", chain, PROXIES) == str(client)
