"""Who is looking at a page: the signed-in user of the session cookie. The page holds no secret: its
script asks GET /api/v1/session for the CSRF token when it first makes a change."""

from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.orm import Session

from moorage.server import auth, sessions


@dataclass(frozen=True)
class Viewer:
    name: str
    role: str  # read | write | admin

    @property
    def can_write(self) -> bool:
        return self.role in (sessions.Role.WRITE, sessions.Role.ADMIN)


def viewer_of(session: Session, request: Request) -> Viewer | None:
    principal = auth.session_principal(session, request)
    if principal is None:
        return None
    role = principal.scopes[0] if principal.scopes else sessions.Role.READ.value
    return Viewer(principal.username or principal.name, role)
