"""The cluster's public egress IP, for the control plane's fleet map (`public_ip.reporting_enabled`).
Off by default: then nothing here runs and no request leaves the agent. On, one GET of the lookup URL
(an ipify-style service that answers the caller's address as text), bounded in time and size; the
answer counts only when it is one IPv4 or IPv6 address."""

import asyncio
import ipaddress
import logging
from urllib.parse import urlsplit

import httpx

log = logging.getLogger("moorage.agent.publicip")

DEFAULT_URL = "https://api.ipify.org"
TIMEOUT_SECONDS = 5.0
MAX_BYTES = 256  # an address is at most 45 characters; more is not an address service


class LookupUrlError(ValueError):
    pass


def check_url(url: str) -> str:
    """The lookup URL, or LookupUrlError naming the problem and the fix."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise LookupUrlError(
            f"the public IP lookup URL {url!r} is not an http(s) URL; "
            f"set public_ip.lookup_url (MOORAGE_AGENT_PUBLIC_IP_LOOKUP_URL) to e.g. {DEFAULT_URL}"
        )
    return url


def parse(body: bytes) -> str | None:
    """The address the lookup service answered, normalised; None for anything else."""
    try:
        text = body.decode("ascii").strip()
        return str(ipaddress.ip_address(text))
    except (UnicodeDecodeError, ValueError):
        return None


async def lookup(url: str, timeout: float = TIMEOUT_SECONDS) -> str | None:
    """GET the lookup URL once, within `timeout` in all; the address, or None (logged) when it
    cannot be had."""
    try:
        return await asyncio.wait_for(_lookup(url, timeout), timeout)
    except TimeoutError:
        log.warning("public IP lookup %s did not answer within %.0fs", url, timeout)
        return None


async def _lookup(url: str, timeout: float) -> str | None:
    try:
        async with (
            httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=True) as client,
            client.stream("GET", url, headers={"Accept": "text/plain"}) as response,
        ):
            if response.status_code != 200:
                log.warning("public IP lookup %s answered HTTP %d", url, response.status_code)
                return None
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_BYTES:
                    log.warning("public IP lookup %s answered more than %d bytes: ignored", url, MAX_BYTES)
                    return None
    except httpx.HTTPError as e:
        log.warning("public IP lookup %s failed: %s", url, e)
        return None
    address = parse(body)
    if address is None:
        log.warning("public IP lookup %s did not answer an IP address", url)
    return address
