"""A small HTTP server on loopback that speaks the documented "create a pull request" contract of
one Git provider. It is a contract test double, not a real provider (no provider is reachable from
the test machines): it checks what each provider's documentation says a request must carry (method,
path, the token in the provider's header, the required JSON fields) and answers as documented
(201 with the pull request's page; 401 for a wrong token; 409 / 422 / 400 for a second pull request
of the same branch, in each provider's error shape).

- GitHub (and Enterprise under /api/v3): POST /repos/{owner}/{repo}/pulls, `Authorization: Bearer`,
  {title, head, base, body} → 201 {number, html_url}; 422 {message, errors[{message}]}.
- GitLab: POST /api/v4/projects/{url-encoded path}/merge_requests, `PRIVATE-TOKEN`,
  {source_branch, target_branch, title} → 201 {iid, web_url}; 409 {message: [..]}.
- Bitbucket Cloud: POST /2.0/repositories/{workspace}/{slug}/pullrequests, bearer or basic,
  {title, source.branch.name, destination.branch.name} → 201 {id, links.html.href};
  400 {type: error, error: {message}}.
- Bitbucket Data Center: POST /rest/api/1.0/projects/{key}/repos/{slug}/pull-requests, bearer,
  {title, fromRef.id, toRef.id} → 201 {id, links.self[{href}]}; 409 {errors: [{message}]}."""

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote


@dataclass
class Contract:
    flavour: str
    token: str
    owner: str
    name: str
    prefix: str = ""  # e.g. /api/v3 for GitHub Enterprise, /bb for a context path
    username: str | None = None  # Bitbucket basic auth
    received: list[dict[str, Any]] = field(default_factory=list)
    opened: dict[str, int] = field(default_factory=dict)  # head branch → number
    url: str = ""
    answer_override: tuple[int, bytes, dict[str, str]] | None = None  # (status, body, headers)

    def path(self) -> str:
        if self.flavour == "github":
            return f"{self.prefix}/repos/{self.owner}/{self.name}/pulls"
        if self.flavour == "gitlab":
            return f"{self.prefix}/api/v4/projects/{self.owner}%2F{self.name}/merge_requests"
        if self.flavour == "bitbucket_cloud":
            return f"{self.prefix}/2.0/repositories/{self.owner}/{self.name}/pullrequests"
        return f"{self.prefix}/rest/api/1.0/projects/{self.owner}/repos/{self.name}/pull-requests"

    def authorized(self, headers: Any) -> bool:
        if self.flavour == "gitlab":
            return bool(headers.get("PRIVATE-TOKEN") == self.token)
        value = headers.get("Authorization") or ""
        if self.username is not None:
            basic = base64.b64encode(f"{self.username}:{self.token}".encode()).decode()
            return bool(value == f"Basic {basic}")
        return bool(value == f"Bearer {self.token}")

    def fields(self, body: dict[str, Any]) -> tuple[str, str, str] | None:
        """(head, base, title) when the body has what the contract requires."""
        try:
            if self.flavour == "github":
                return body["head"], body["base"], body["title"]
            if self.flavour == "gitlab":
                return body["source_branch"], body["target_branch"], body["title"]
            if self.flavour == "bitbucket_cloud":
                return (
                    body["source"]["branch"]["name"],
                    body["destination"]["branch"]["name"],
                    body["title"],
                )
            head, base = body["fromRef"]["id"], body["toRef"]["id"]
            if not head.startswith("refs/heads/") or not base.startswith("refs/heads/"):
                return None
            return head.removeprefix("refs/heads/"), base.removeprefix("refs/heads/"), body["title"]
        except (KeyError, TypeError):
            return None

    def created(self, number: int) -> dict[str, Any]:
        page = f"{self.url}/{self.owner}/{self.name}/pull/{number}"
        if self.flavour == "github":
            return {"number": number, "html_url": page, "state": "open"}
        if self.flavour == "gitlab":
            return {"iid": number, "web_url": page, "state": "opened"}
        if self.flavour == "bitbucket_cloud":
            return {"id": number, "links": {"html": {"href": page}}, "state": "OPEN"}
        return {"id": number, "links": {"self": [{"href": page}]}, "state": "OPEN"}

    def duplicate(self, head: str) -> tuple[int, dict[str, Any]]:
        text = f"A pull request already exists for {head}."
        if self.flavour == "github":
            return 422, {
                "message": "Validation Failed",
                "errors": [{"resource": "PullRequest", "message": text}],
            }
        if self.flavour == "gitlab":
            return 409, {
                "message": [f"Another open merge request already exists for this source branch: {head}"]
            }
        if self.flavour == "bitbucket_cloud":
            return 400, {"type": "error", "error": {"message": text}}
        return 409, {"errors": [{"message": text}]}

    def unauthorized(self) -> tuple[int, dict[str, Any]]:
        # some providers echo what they were given; the client must never show it
        seen = "Bad credentials" if self.flavour == "github" else "401 Unauthorized"
        return 401, {"message": seen}


@contextmanager
def serve(contract: Contract) -> Iterator[Contract]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for k, v in (headers or {"Content-Type": "application/json"}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            record = {"path": self.path, "headers": dict(self.headers.items()), "raw": raw}
            contract.received.append(record)
            if contract.answer_override is not None:
                status, body, headers = contract.answer_override
                self._answer(status, body, headers)
                return
            if unquote(self.path) != unquote(contract.path()):
                self._answer(404, json.dumps({"message": "Not Found"}).encode())
                return
            if not contract.authorized(self.headers):
                status, data = contract.unauthorized()
                self._answer(status, json.dumps(data).encode())
                return
            try:
                body = json.loads(raw)
            except ValueError:
                self._answer(400, json.dumps({"message": "Problems parsing JSON"}).encode())
                return
            record["body"] = body
            found = contract.fields(body) if isinstance(body, dict) else None
            if found is None or not all(found):
                self._answer(400, json.dumps({"message": "missing required fields"}).encode())
                return
            head = found[0]
            if head in contract.opened:
                status, data = contract.duplicate(head)
                self._answer(status, json.dumps(data).encode())
                return
            contract.opened[head] = len(contract.opened) + 1
            self._answer(201, json.dumps(contract.created(contract.opened[head])).encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    contract.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield contract
    finally:
        server.shutdown()
        server.server_close()
