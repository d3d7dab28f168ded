"""Where upstream requests may go: no cloud metadata, optionally no private networks.

Integration URLs come from whoever may write integrations, and the runner sends
requests (with credentials) wherever they point, so it refuses addresses that
would turn it into a way into its own network (server-side request forgery):

- link-local and cloud-metadata addresses (169.254.0.0/16, fe80::/10,
  fd00:ec2::254, Alibaba's 100.100.100.200) always;
- loopback, private, carrier-grade NAT and unique-local ranges when
  ``RUNNER_BLOCK_PRIVATE_NETWORKS=true``.

An IPv6 address that carries an IPv4 address (IPv4-mapped or -compatible,
NAT64, 6to4, Teredo) is refused when the IPv4 address is: packets sent to it
end up there.

A URL whose host is a literal address is checked at registration (422); an
IPv4 address not written a.b.c.d (octal, hex, one number, fewer parts) never
gets that far, as the schema refuses it (:func:`runner.text_rules.http_url`). A host
name is resolved when a request is made and every address it resolves to is
checked before any connection is opened. On the fast path the connection then
goes to the checked address, so a name that changes what it points to (DNS
rebinding) cannot get through; through LiteLLM and for OAuth2 token requests
the name is checked just before the request, which then resolves it once more
(a window of one lookup).
Redirects are not followed. Requests that go through an HTTP proxy are
checked the same way, but the proxy resolves names itself: enforce the same
rules there. Custom handlers make their own requests and are not covered.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
# Where RFC 6052 puts the IPv4 address for each NAT64 prefix length a /48 may use.
_NAT64_LOCAL_LENGTHS = (48, 56, 64, 96)

_ALWAYS_REFUSED = tuple(
    ipaddress.ip_network(n)
    for n in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32")
)
_PRIVATE = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "::/128",
        "::1/128",
        "fc00::/7",
    )
)


class AddressRefused(OSError):
    """A request would reach an address the runner refuses; no connection was opened."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        super().__init__(f"{host} resolves to {address}, {reason}")
        self.host = host
        self.address = address


class AddressPolicy:
    """The refusal rules, and the resolver and transport that apply them to requests."""

    def __init__(self, block_private: bool, resolver: AbstractResolver | None = None) -> None:
        self.block_private = block_private
        self._given_resolver = resolver
        self._system_resolver: AbstractResolver | None = None

    def why_refused(self, address: str) -> str | None:
        """Why connecting to ``address`` is refused, or None when it is allowed.

        An IPv6 address is also refused for the IPv4 address it carries, if any.
        """
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
        reason = self._rule_refusing(ip)
        if reason is not None or isinstance(ip, ipaddress.IPv4Address):
            return reason
        for embedded in embedded_ipv4(ip):
            reason = self._rule_refusing(embedded)
            if reason is not None:
                return f"an IPv6 address carrying {embedded}, {reason}"
        return None

    def _rule_refusing(self, ip: IPAddress) -> str | None:
        if any(ip in network for network in _ALWAYS_REFUSED):
            return "a link-local or cloud-metadata address, which upstreams may never use"
        if self.block_private and any(ip in network for network in _PRIVATE):
            return (
                "a loopback or private-network address, refused because "
                "RUNNER_BLOCK_PRIVATE_NETWORKS is true"
            )
        return None

    def url_problem(self, url: str) -> str | None:
        """Why a URL whose host is a literal address is refused; names are checked per request."""
        host = urlsplit(url).hostname
        try:
            reason = self.why_refused(host) if host else None
        except ValueError:
            return None  # a name: checked when a request resolves it
        return f"points at {host}, {reason}" if reason else None

    def resolver(self) -> AbstractResolver:
        """For aiohttp: resolve, then refuse the whole answer if any address is refused."""
        return _GuardedResolver(self, self._names())

    def transport(self, **options: Any) -> httpx.AsyncBaseTransport:
        """For httpx (LiteLLM's client, OAuth2 token requests): check names before sending."""
        return _GuardedTransport(self, httpx.AsyncHTTPTransport(**options))

    async def check_host(self, host: str, port: int) -> None:
        try:
            reason = self.why_refused(host)
        except ValueError:
            for answer in await self._names().resolve(host, port, socket.AF_UNSPEC):
                self.check_address(host, answer["host"])
            return
        if reason is not None:
            raise AddressRefused(host, host, reason)

    def _names(self) -> AbstractResolver:
        """The resolver in use: the one given, else the system's, made once and shared
        (made on first use, inside the event loop, as aiohttp's resolvers expect)."""
        if self._given_resolver is not None:
            return self._given_resolver
        if self._system_resolver is None:
            self._system_resolver = aiohttp.DefaultResolver()
        return self._system_resolver

    def check_address(self, host: str, address: str) -> None:
        """Raise :class:`AddressRefused` if ``host``'s resolved ``address`` is refused."""
        reason = self.why_refused(address)
        if reason is not None:
            raise AddressRefused(host, address, reason)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: where packets sent to it end up.

    For a local-use NAT64 prefix (64:ff9b:1::/48) the prefix length, and so where
    the IPv4 address sits, is the network's choice: every RFC 6052 place counts.
    """
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return list(ip.teredo)
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):  # :: and ::1 are no carriers
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip in _NAT64_LOCAL:
        packed = ip.packed
        without_u_octet = packed[:8] + packed[9:]  # RFC 6052 keeps bits 64-71 zero
        return [
            ipaddress.IPv4Address(
                packed[12:] if length == 96 else without_u_octet[length // 8 : length // 8 + 4]
            )
            for length in _NAT64_LOCAL_LENGTHS
        ]
    return []


class _GuardedResolver(AbstractResolver):
    def __init__(self, policy: AddressPolicy, inner: AbstractResolver) -> None:
        self._policy = policy
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        for answer in answers:
            self._policy.check_address(host, answer["host"])
        return answers

    async def close(self) -> None:
        await self._inner.close()


class _GuardedTransport(httpx.AsyncBaseTransport):
    def __init__(self, policy: AddressPolicy, inner: httpx.AsyncBaseTransport) -> None:
        self._policy = policy
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            await self._policy.check_host(url.host, port)
        except AddressRefused as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
