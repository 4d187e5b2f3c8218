"""Loopback ports and the address the API server advertises."""

import fcntl
import ipaddress
import socket
import struct

from moorage.devcluster.errors import DevclusterError

_SIOCGIFADDR = 0x8915


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports that were free a moment ago (held open together, then released)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _interface_ipv4(name: str) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            packed = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def advertise_address() -> str:
    """A non-loopback IPv4 address of this host.

    kube-apiserver writes it into the `kubernetes` Endpoints, where loopback is invalid. Nothing
    connects to it: the API server itself listens on 127.0.0.1 only."""
    for _, name in socket.if_nameindex():
        address = _interface_ipv4(name)
        if address is None:
            continue
        ip = ipaddress.IPv4Address(address)
        if not (ip.is_loopback or ip.is_link_local or ip.is_unspecified):
            return address
    raise DevclusterError(
        "no non-loopback IPv4 address on this host; kube-apiserver needs one to advertise "
        "(it is never connected to). Add one, e.g. `ip addr add 10.254.0.1/32 dev lo`"
    )
