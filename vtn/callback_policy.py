"""Which webhook callback URLs the facade POSTs to: a VEN client (a third party) must not be able to
turn the facade against the services only it can reach (the chain's JSON-RPC on 127.0.0.1:8545, the
cloud metadata address 169.254.169.254, the operator's private networks).

The rule: a callback URL is `http` or `https`, carries no userinfo (`user:pass@`), names a port that
is 80, 443 or unprivileged (1024-65535), and every address its host resolves to is a public one: not
unspecified (0.0.0.0/8, ::), loopback (127.0.0.0/8, ::1), link-local (169.254.0.0/16, fe80::/10),
private (RFC 1918, ULA fc00::/7, site-local fec0::/10), carrier-grade NAT (100.64.0.0/10), multicast
(224.0.0.0/4, ff00::/8), reserved (240.0.0.0/4 and the broadcast, the reserved IPv6 blocks), nor
any other special-purpose block that is not globally routable (documentation, benchmarking, IETF
protocol assignments, Teredo). An IPv6 address embedding an IPv4 one (IPv4-mapped ::ffff:0:0/96,
NAT64 64:ff9b::/96, 6to4 2002::/16) is judged by the IPv4 address it reaches. IPv4 in legacy
numeric forms (`2130706433`, `0177.0.0.1`, `0x7f.1`) is read as the address it means.

The operator's allow-list (`NEGAWATT_VTN_CALLBACK_ALLOW`) names what it trusts: an IP network
(`127.0.0.0/8`, `::1`, `10.1.2.0/24`) admits the addresses inside it, a host name (`hooks.internal`)
admits that exact name whatever it resolves to. Nothing is trusted by default; a devnet allows
loopback explicitly.

The check runs twice: when a subscription is created or replaced (the route answers a 400 problem
naming the rule), and again before each POST, where `check` resolves the name once more and the
notifier connects to the address it checked (the name goes in the Host header and TLS SNI), so a
name that was public at subscription time and points inside at send time (DNS rebinding) is not
reached.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Callable, Iterable

import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]
"""A host name and port -> the addresses (as text) a connection to it would try."""

MAX_HOST_LENGTH = 253
MAX_ADDRESSES = 32
SCHEMES = {"http": 80, "https": 443}
PUBLIC_PORTS = frozenset({80, 443})
FIRST_UNPRIVILEGED_PORT = 1024

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network
# (rule, networks) in the order a refusal names them; the catch-all `special-purpose` comes last.
_RULES: tuple[tuple[str, tuple[Network, ...]], ...] = (
    ("unspecified", (_V4("0.0.0.0/8"), _V6("::/128"))),
    ("loopback", (_V4("127.0.0.0/8"), _V6("::1/128"))),
    ("link-local", (_V4("169.254.0.0/16"), _V6("fe80::/10"))),
    ("private", (_V4("10.0.0.0/8"), _V4("172.16.0.0/12"), _V4("192.168.0.0/16"), _V6("fc00::/7"),
                 _V6("fec0::/10"))),
    ("carrier-grade NAT", (_V4("100.64.0.0/10"),)),
    ("multicast", (_V4("224.0.0.0/4"), _V6("ff00::/8"))),
    ("reserved", (_V4("240.0.0.0/4"),)),
)
_NAT64 = _V6("64:ff9b::/96")
_LEGACY_IPV4 = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.IGNORECASE)
_HOST_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}"
                        r"[a-z0-9_])?)*\.?$", re.IGNORECASE)


class CallbackRefused(ValueError):
    """A callback URL the policy refuses; `rule` names the rule (scheme, userinfo, port, loopback, ...)."""

    def __init__(self, rule: str, detail: str):
        super().__init__(f"{rule}: {detail}")
        self.rule, self.detail = rule, detail


@dataclass(frozen=True)
class CheckedCallback:
    """Where to POST a checked callback: `url` has the checked address in place of a host name, and
    `headers` / `extensions` carry the name (Host header, TLS SNI and certificate name)."""

    url: str
    address: str
    headers: dict[str, str]
    extensions: dict[str, str]


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the operating system resolves `host` to (getaddrinfo: /etc/hosts, then DNS)."""
    found: list[str] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        if sockaddr[0] not in found:
            found.append(str(sockaddr[0]))
    return found


def parse_allow(entries: Iterable[str]) -> tuple[tuple[Network, ...], frozenset[str]]:
    """The allow-list as (networks, host names); ValueError naming an entry that is neither."""
    networks: list[Network] = []
    names: set[str] = set()
    for raw in entries:
        entry = raw.strip()
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        if not _HOST_NAME.match(entry) or _LEGACY_IPV4.match(entry):
            raise ValueError(f"callback allow-list entry {raw!r} is neither an IP network nor a host name")
        names.add(_name(entry))
    return tuple(networks), frozenset(names)


def _name(host: str) -> str:
    return host.lower().rstrip(".")


def _literal(host: str) -> Address | None:
    """The address a host written as an IP literal means (legacy numeric IPv4 included), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    if _LEGACY_IPV4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            raise CallbackRefused("host", f"{host!r} looks like a numeric IPv4 address but is not one") from None
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def refusal(address: Address) -> str | None:
    """The rule that refuses `address` as a callback destination, or None for a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            rule = refusal(inner)
            return f"{rule} (IPv4 {inner} inside IPv6)" if rule else None
        address = ipaddress.IPv6Address(address.compressed.split("%")[0])  # the scope id says nothing
    for rule, networks in _RULES:
        if any(address.version == network.version and address in network for network in networks):
            return rule
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "special-purpose"
    return None


class CallbackPolicy:
    """The rule of this module for one facade: `allow` is the operator's allow-list, `resolver` how
    host names are resolved (the system's by default; tests inject one)."""

    def __init__(self, allow: Iterable[str] = (), resolver: Resolver = system_resolver):
        self.networks, self.names = parse_allow(allow)
        self.resolver = resolver

    def _allowed(self, address: Address) -> bool:
        candidates = [address]
        if isinstance(address, ipaddress.IPv6Address) and _embedded_ipv4(address) is not None:
            candidates.append(_embedded_ipv4(address))
        return any(c.version == n.version and c in n for c in candidates for n in self.networks)

    def _judge(self, address: Address, host: str, literal: bool) -> None:
        if self._allowed(address):
            return
        rule = refusal(address)
        if rule is not None:
            if not literal:
                said = f"{host} resolves to {address}, which is"
            elif host.strip("[]") == str(address):
                said = f"{address} is"
            else:
                said = f"{host} is the address {address}:"
            raise CallbackRefused(rule, f"{said} not a public address; the operator may allow it with "
                                        "NEGAWATT_VTN_CALLBACK_ALLOW")

    def check(self, url: str) -> CheckedCallback:
        """Check `url` against the rule, resolving its host now; CallbackRefused names the rule broken.
        The answer says which checked address to connect to and how to name the host to it."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError) as error:
            raise CallbackRefused("syntax", f"not a URL: {error}") from None
        if parsed.scheme not in SCHEMES:
            raise CallbackRefused("scheme", f"the scheme must be http or https, not {parsed.scheme or 'none'!r}")
        if parsed.userinfo or "@" in parsed.netloc.decode("ascii", "replace"):
            raise CallbackRefused("userinfo", "a callback URL carries no user name or password (user:pass@)")
        host = parsed.raw_host.decode("ascii", "replace")  # IDNA-encoded, as DNS and the Host header want it
        if not host or len(host) > MAX_HOST_LENGTH:
            raise CallbackRefused("host", "the URL names no host, or one longer than 253 characters")
        port = parsed.port or SCHEMES[parsed.scheme]
        if port not in PUBLIC_PORTS and port < FIRST_UNPRIVILEGED_PORT:
            raise CallbackRefused("port", f"port {port} is privileged: use 80, 443 or 1024-65535")
        written = _literal(host)
        if written is not None:
            self._judge(written, host, literal=True)
            target = parsed.copy_with(host=str(written))
            return CheckedCallback(str(target), str(written), {}, {})
        addresses = self._resolve(host, port)
        if _name(host) not in self.names:  # an allowed name is trusted whatever it resolves to
            for address in addresses:
                self._judge(address, host, literal=False)
        chosen = addresses[0]
        host_header = host if parsed.port is None else f"{host}:{parsed.port}"
        extensions = {"sni_hostname": host} if parsed.scheme == "https" else {}
        return CheckedCallback(str(parsed.copy_with(host=str(chosen))), str(chosen), {"Host": host_header},
                               extensions)

    def _resolve(self, host: str, port: int) -> list[Address]:
        try:
            found = self.resolver(host, port)
        except (OSError, UnicodeError) as error:
            raise CallbackRefused("unresolvable", f"{host} does not resolve: {error}") from None
        addresses = []
        for text in found[:MAX_ADDRESSES]:
            try:
                addresses.append(ipaddress.ip_address(text))
            except ValueError:
                raise CallbackRefused("unresolvable", f"{host} resolves to {text!r}, not an address") from None
        if not addresses:
            raise CallbackRefused("unresolvable", f"{host} resolves to no address")
        return addresses
