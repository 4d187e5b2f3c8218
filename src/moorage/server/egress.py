"""Where the server may connect on a user's say-so (Git and chart hosts): not to loopback, private,
link-local or otherwise special addresses unless an administrator allows a range
(MOORAGE_EGRESS_ALLOW). A host name is resolved and every address it gives is checked; the caller
then connects to those checked addresses only (git: `http.curloptResolve`, ssh `HostName`), so a
name that resolves differently a moment later (DNS rebinding) does not get round the check.

`refusal` is the pure rule; `vet` adds the resolution. Messages name the host and the kind of
address, never the URL (which may hold a secret) or the address a name resolved to."""

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

RESOLVE_TIMEOUT_SECONDS = 10.0
MAX_ADDRESSES = 32
# words an administrator may write in MOORAGE_EGRESS_ALLOW instead of ranges
_NAMED_RANGES: dict[str, tuple[str, ...]] = {
    "loopback": ("127.0.0.0/8", "::1/128"),
    "private": ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"),
}
_ALLOW_HINT = "an administrator can allow the range with MOORAGE_EGRESS_ALLOW (e.g. 10.0.0.0/8, loopback)"


class EgressRefused(ValueError):
    """The server will not connect there; `message` is safe to show. `temporary`: the name did not
    resolve, which may pass."""

    def __init__(self, message: str, *, temporary: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.temporary = temporary


@dataclass(frozen=True)
class EgressPolicy:
    """The special ranges an administrator allowed; everything public is allowed anyway."""

    allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str | Iterable[str] | None) -> "EgressPolicy":
        """From `10.0.0.0/8, loopback` (comma- or space-separated); a bad item is an error naming it."""
        items = (text.replace(",", " ").split() if isinstance(text, str) else list(text)) if text else []
        networks: list[IPNetwork] = []
        for item in items:
            for cidr in _NAMED_RANGES.get(item.lower(), (item,)):
                try:
                    networks.append(ipaddress.ip_network(cidr, strict=False))
                except ValueError:
                    raise ValueError(
                        f"MOORAGE_EGRESS_ALLOW: {item!r} is not an address range; give CIDRs such as "
                        f"10.0.0.0/8 or the words {', '.join(_NAMED_RANGES)}"
                    ) from None
        return cls(tuple(networks))

    def allows(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.allowed)


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64), which is where it leads."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in ipaddress.IPv6Network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def kind_of(address: IPAddress) -> str | None:
    """What makes an address special ("loopback", "private", …); None for a public address."""
    inner = _embedded_ipv4(address)
    if inner is not None:
        return kind_of(inner)
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    )
    for name, special in checks:
        if special:
            return name
    if not address.is_global:  # e.g. 100.64.0.0/10, shared address space
        return "non-public"
    return None


def refusal(host: str, address: IPAddress, policy: EgressPolicy) -> str | None:
    """Why the server must not connect to `address` (which `host` resolved to); None if it may."""
    kind = kind_of(address)
    if (
        kind is None
        or policy.allows(address)
        or ((inner := _embedded_ipv4(address)) is not None and policy.allows(inner))
    ):
        return None
    return f"host {host!r} is a {kind} address; the server does not connect there ({_ALLOW_HINT})"


async def vet(host: str, port: int, policy: EgressPolicy) -> list[str]:
    """The addresses of `host` the server may connect to (all of them, or EgressRefused)."""
    bare = host.strip("[]")
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(bare, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_SECONDS
        )
    except (OSError, TimeoutError, UnicodeError):
        raise EgressRefused(
            f"host {bare!r} cannot be resolved; check the host name", temporary=True
        ) from None
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos[: MAX_ADDRESSES * 4]:
        text = str(sockaddr[0]).partition("%")[0]  # an IPv6 scope id does not change the address
        address = ipaddress.ip_address(text)
        problem = refusal(bare, address, policy)
        if problem is not None:
            raise EgressRefused(problem)
        if text not in addresses:
            addresses.append(text)
    if not addresses:
        raise EgressRefused(f"host {bare!r} has no address; check the host name")
    return addresses[:MAX_ADDRESSES]
