"""The HTTP client of `moorage server` used by the remote commands (`cluster`, `operations`, `addons`).

The server's URL comes from `--server`, else $MOORAGE_SERVER, else http://127.0.0.1:8000; the API
token from `--token`, else $MOORAGE_TOKEN; a private CA for an https:// server from `moorage --ca FILE`,
else $MOORAGE_CA (only that CA is then trusted). Errors answered by the server print its `detail` and exit 1;
a server that cannot be reached exits 2 naming the URL. The token is sent only in the Authorization
header and never printed: messages pass through `Remote.scrub` before they are shown."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import typer

from moorage.cli.output import err

if TYPE_CHECKING:
    import httpx  # imported where a request is made: it costs more than the rest of `moorage --help`

DEFAULT_SERVER = "http://127.0.0.1:8000"
SERVER_ENV = "MOORAGE_SERVER"
TOKEN_ENV = "MOORAGE_TOKEN"  # noqa: S105 (an environment variable name)
CA_ENV = "MOORAGE_CA"
API_PREFIX = "/api/v1"
DEFAULT_TIMEOUT_SECONDS = 30.0

EXIT_ERROR = 1
EXIT_UNREACHABLE = 2


def _default_transport() -> httpx.BaseTransport | None:
    return None


# Tests replace this with a transport that serves the app in-process (None: httpx's own transport).
transport_factory: Callable[[], httpx.BaseTransport | None] = _default_transport
# `moorage --ca FILE` (cli/main.py); None: $MOORAGE_CA
ca_option: Path | None = None


class ApiError(Exception):
    """The server answered with an error status; `detail` is its explanation, `body` the whole JSON."""

    def __init__(self, status_code: int, detail: str, body: Mapping[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.body: Mapping[str, Any] = body or {}


class Unreachable(Exception):
    """No HTTP answer at all: connection refused, DNS, TLS, timeout, a broken connection."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


def _detail_of(response: httpx.Response) -> tuple[str, Mapping[str, Any] | None]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, str) and detail:
            return detail, body
        if detail is not None:
            return str(detail), body
    text = f"HTTP {response.status_code} {response.reason_phrase}".strip()
    return text, body if isinstance(body, dict) else None


def api_path(*parts: str) -> str:
    """An API path of URL-quoted segments: api_path("clusters", "a/b") == "/clusters/a%2Fb"."""
    return "/" + "/".join(quote(p, safe="") for p in parts)


def normalize_server(url: str) -> str:
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


@dataclass
class Remote:
    """One server and the caller's token (kept out of repr and of every message)."""

    server: str
    token: str | None = field(default=None, repr=False)
    ca: Path | None = None

    @classmethod
    def from_options(cls, server: str | None, token: str | None) -> Remote:
        url = server or os.environ.get(SERVER_ENV) or DEFAULT_SERVER
        secret = token or os.environ.get(TOKEN_ENV) or None
        ca = ca_option or (Path(os.environ[CA_ENV]) if os.environ.get(CA_ENV) else None)
        return cls(normalize_server(url), secret, ca)

    def _verify(self) -> Any:
        """httpx's `verify`: only the given CA, else the system's."""
        if self.ca is None or not self.server.startswith("https://"):
            return True
        import ssl

        try:
            return ssl.create_default_context(cafile=str(self.ca))
        except (OSError, ssl.SSLError) as e:
            raise Unreachable(self.server, f"cannot read the CA file {self.ca}: {e}") from None

    def scrub(self, text: str) -> str:
        if self.token:
            text = text.replace(self.token, "<token>")
        return text

    def _client(self, timeout: float | None) -> httpx.Client:
        import httpx

        headers = {"Accept": "application/json", "User-Agent": "moorage-cli"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        transport = transport_factory()
        return httpx.Client(
            base_url=self.server + API_PREFIX,
            headers=headers,
            timeout=timeout,
            transport=transport,
            verify=self._verify(),
        )

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | float] | None = None,
        body: Any = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> tuple[int, Any]:
        """(status code, decoded JSON) of a 2xx answer; ApiError or Unreachable otherwise."""
        import httpx

        try:
            with self._client(timeout) as client:
                response = client.request(method, path, params=params, json=body)
        except httpx.TransportError as e:
            raise Unreachable(self.server, self.scrub(str(e) or type(e).__name__)) from None
        except httpx.InvalidURL as e:
            raise Unreachable(self.server, f"invalid URL: {self.scrub(str(e))}") from None
        if not response.is_success:
            detail, data = _detail_of(response)
            raise ApiError(response.status_code, self.scrub(detail), data)
        if not response.content:
            return response.status_code, None
        try:
            return response.status_code, response.json()
        except ValueError:
            raise ApiError(
                response.status_code, f"the server at {self.server} did not answer with JSON"
            ) from None

    def events(self, path: str, params: Mapping[str, str | int | float]) -> Iterator[tuple[str, str]]:
        """(event, data) of a server-sent events stream, until the server ends it."""
        import httpx

        try:
            with self._client(timeout=None) as client, client.stream("GET", path, params=params) as response:
                if not response.is_success:
                    response.read()
                    detail, data = _detail_of(response)
                    raise ApiError(response.status_code, self.scrub(detail), data)
                event = "message"
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        yield event, line[6:]
                        event = "message"
        except httpx.TransportError as e:
            raise Unreachable(self.server, self.scrub(str(e) or type(e).__name__)) from None

    def get(self, path: str, **params: str | int | float) -> Any:
        return self.call("GET", path, params=params or None)[1]

    def pages(
        self, path: str, params: Mapping[str, str | int] | None = None, limit: int | None = None
    ) -> Any:
        """Every item of a paginated list (up to `limit`), as the first page's JSON with `result`
        holding the items of all pages read."""
        size = min(100, limit) if limit else 100
        first: dict[str, Any] | None = None
        items: list[Any] = []
        page = 1
        while True:
            data = self.get(path, **{**(params or {}), "page": page, "page_size": size})
            if not isinstance(data, dict) or not isinstance(data.get("result"), list):
                raise ApiError(200, f"unexpected answer from {self.server}{API_PREFIX}{path}")
            first = first or data
            items.extend(data["result"])
            total_pages = int((data.get("pagination") or {}).get("total_pages") or 0)
            if (limit and len(items) >= limit) or page >= total_pages or not data["result"]:
                break
            page += 1
        assert first is not None
        return {**first, "result": items[:limit] if limit else items}


@contextlib.contextmanager
def handled(remote: Remote) -> Iterator[None]:
    """Turn ApiError into its detail and exit 1, Unreachable into the URL and exit 2."""
    try:
        yield
    except ApiError as e:
        message = f"error: {e.detail}"
        if e.status_code == 401:
            message += f" (pass an API token with --token or ${TOKEN_ENV})"
        err.print(remote.scrub(message), style="red", markup=False)
        raise typer.Exit(EXIT_ERROR) from None
    except Unreachable as e:
        hint = f"is `moorage server` running? (set --server or ${SERVER_ENV})"
        if "CERTIFICATE_VERIFY_FAILED" in e.reason:
            hint = f"the server's certificate is not trusted: give its CA (`moorage --ca FILE` or ${CA_ENV})"
        err.print(
            remote.scrub(f"error: could not reach the Moorage server at {e.url} ({e.reason}); {hint}"),
            style="red",
            markup=False,
        )
        raise typer.Exit(EXIT_UNREACHABLE) from None
