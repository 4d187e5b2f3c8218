"""Who is looking at a page: the signed-in user of the session cookie, with the CSRF token the page's
script sends on every change (see moorage.server.sessions)."""

from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.orm import Session

from moorage.server import auth, sessions


@dataclass(frozen=True)
class Viewer:
    name: str
    role: str  # read | write | admin
    csrf: str

    @property
    def can_write(self) -> bool:
        return self.role in (sessions.Role.WRITE, sessions.Role.ADMIN)


def viewer_of(session: Session, request: Request) -> Viewer | None:
    principal = auth.session_principal(session, request)
    if principal is None:
        return None
    role = principal.scopes[0] if principal.scopes else sessions.Role.READ.value
    secret = request.cookies[sessions.COOKIE_NAME]
    return Viewer(principal.username or principal.name, role, sessions.csrf_token(secret))
