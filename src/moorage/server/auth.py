"""Bearer-token checks as FastAPI dependencies. Error messages name the problem, never the token."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from moorage.server import service, tokens
from moorage.server.db.models import Cluster
from moorage.server.db.session import SessionFactory, transaction
from moorage.server.tokens import Scope

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API token's id, name and scopes (never the token itself)."""

    token_id: str
    name: str
    scopes: tuple[str, ...]


def session_factory(request: Request) -> SessionFactory:
    factory: SessionFactory = request.app.state.session_factory
    return factory


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=message, headers=_CHALLENGE)


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise _unauthorized("missing bearer token")
    return value.strip()


def require(scope: Scope) -> Callable[..., Principal]:
    """A dependency that admits API tokens granting `scope` (admin ⊇ write ⊇ read)."""

    def dependency(
        token: Annotated[str, Depends(bearer_token)],
        factory: Annotated[SessionFactory, Depends(session_factory)],
    ) -> Principal:
        if token.startswith(tokens.AGENT_TOKEN_PREFIX):
            raise _unauthorized("agent tokens are accepted only by /api/v1/agent endpoints")
        with transaction(factory) as session:
            row = service.authenticate_token(session, token)
            if row is None:
                raise _unauthorized("unknown or revoked token")
            principal = Principal(row.id, row.name, tuple(row.scopes))
        if not tokens.granted(principal.scopes, scope):
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"token lacks scope '{scope.value}'")
        return principal

    return dependency


@dataclass(frozen=True)
class AgentPrincipal:
    cluster_id: str
    cluster_name: str


def require_agent(
    token: Annotated[str, Depends(bearer_token)],
    factory: Annotated[SessionFactory, Depends(session_factory)],
) -> AgentPrincipal:
    with transaction(factory) as session:
        cluster: Cluster | None = service.authenticate_agent(session, token)
        if cluster is None:
            raise _unauthorized("unknown or revoked agent token")
        return AgentPrincipal(cluster.id, cluster.name)
