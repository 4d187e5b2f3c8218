"""Who is calling, as FastAPI dependencies: a bearer API token (the API and the CLI) or a web UI
session cookie (see moorage.server.sessions). Error messages name the problem, never the secret.

With a session cookie every unsafe method (anything but GET, HEAD, OPTIONS) must carry the header
`X-CSRF-Token` with the session's CSRF token: a page of another site can make the browser send the
cookie, but cannot read the token nor set the header without a CORS preflight, which is never allowed.
A request with a bearer token needs no CSRF token (a browser never adds that header by itself)."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy.orm import Session

from moorage.server import service, sessions, tokens
from moorage.server.db.models import Cluster
from moorage.server.db.session import SessionFactory, transaction
from moorage.server.tokens import Scope

if TYPE_CHECKING:
    from moorage.server.api.deps import AppContext

_CHALLENGE = {"WWW-Authenticate": "Bearer"}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_REFUSED = "missing or wrong CSRF token; reload the page"
SESSION_ENDED = "not signed in, or the session ended; sign in again"


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API token (its id and name) or a signed-in user (`user:<username>`, with the
    session's id), and the scopes granted (a user's role is its one scope). Never a secret."""

    token_id: str | None
    name: str
    scopes: tuple[str, ...]
    username: str | None = None
    session_id: str | None = None


def session_factory(request: Request) -> SessionFactory:
    factory: SessionFactory = request.app.state.session_factory
    return factory


def _context(request: Request) -> "AppContext":
    ctx: AppContext = request.app.state.moorage
    return ctx


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=message, headers=_CHALLENGE)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def bearer_token(request: Request) -> str:
    token = _bearer(request)
    if token is None:
        raise _unauthorized("missing bearer token")
    return token


def token_hasher(request: Request) -> tokens.TokenHasher:
    return _context(request).token_hasher


def _token_principal(factory: SessionFactory, hasher: tokens.TokenHasher, token: str) -> Principal:
    if token.startswith(tokens.AGENT_TOKEN_PREFIX):
        raise _unauthorized("agent tokens are accepted only by /api/v1/agent endpoints")
    with transaction(factory) as session:
        row = service.authenticate_token(session, hasher, token)
        if row is None:
            raise _unauthorized("unknown or revoked token")
        return Principal(row.id, row.name, tuple(row.scopes))


def session_principal(session: Session, request: Request) -> Principal | None:
    """The signed-in user of the request's session cookie, or None. Checks no CSRF token: for pages
    (GET) that run their own queries in `session`."""
    secret = request.cookies.get(sessions.COOKIE_NAME)
    if not secret:
        return None
    ctx = _context(request)
    who = sessions.authenticate(session, secret, ctx.clock(), sessions.SessionPolicy.of(ctx.settings))
    if who is None:
        return None
    return Principal(None, f"user:{who.username}", sessions.scopes_of(who.role), who.username, who.session_id)


def signed_in(request: Request, factory: Annotated[SessionFactory, Depends(session_factory)]) -> Principal:
    """A dependency that admits only a session cookie (no API token), with the CSRF token on every
    unsafe method."""
    if not request.cookies.get(sessions.COOKIE_NAME):
        raise _unauthorized(SESSION_ENDED)
    with transaction(factory) as session:
        principal = session_principal(session, request)
    if principal is None:
        raise _unauthorized(SESSION_ENDED)
    if request.method not in SAFE_METHODS:
        secret = request.cookies[sessions.COOKIE_NAME]
        if not sessions.csrf_matches(secret, request.headers.get(sessions.CSRF_HEADER)):
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=CSRF_REFUSED)
    return principal


def require(scope: Scope) -> Callable[..., Principal]:
    """A dependency that admits an API token granting `scope`, or a signed-in user whose role grants
    it (admin ⊇ write ⊇ read). A bearer token wins over a cookie; without either: 401."""

    def dependency(
        request: Request, factory: Annotated[SessionFactory, Depends(session_factory)]
    ) -> Principal:
        token = _bearer(request)
        if token is not None:
            principal = _token_principal(factory, token_hasher(request), token)
            if not tokens.granted(principal.scopes, scope):
                raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"token lacks scope '{scope.value}'")
            return principal
        if not request.cookies.get(sessions.COOKIE_NAME):
            raise _unauthorized("missing bearer token")
        principal = signed_in(request, factory)
        if not tokens.granted(principal.scopes, scope):
            role = principal.scopes[0] if principal.scopes else "none"
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"your role '{role}' does not allow this; it needs '{scope.value}'",
            )
        return principal

    return dependency


@dataclass(frozen=True)
class AgentPrincipal:
    cluster_id: str
    cluster_name: str


def require_agent(
    request: Request,
    token: Annotated[str, Depends(bearer_token)],
    factory: Annotated[SessionFactory, Depends(session_factory)],
) -> AgentPrincipal:
    with transaction(factory) as session:
        cluster: Cluster | None = service.authenticate_agent(session, token_hasher(request), token)
        if cluster is None:
            raise _unauthorized("unknown or revoked agent token")
        return AgentPrincipal(cluster.id, cluster.name)
