"""/api/v1/session: sign in to the web UI, who am I, sign out, change one's own password.

Sign-in answers the session cookie `moorage_session` (HttpOnly, SameSite, Path=/, Secure under https)
and the CSRF token the page sends as `X-CSRF-Token` on every change. Sign-in and sign-out need no
CSRF token (there is no session yet, or ending it is harmless), so sign-in takes JSON only: an HTML
form of another site cannot send `Content-Type: application/json`, and a script of another site
cannot either without a CORS preflight, which is never allowed. A form cannot send DELETE at all."""

import logging
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from pydantic import BaseModel, Field, SecretStr
from sqlalchemy.orm import Session

from moorage.server import sessions
from moorage.server.api.deps import Ctx
from moorage.server.api.schemas import Request as Body
from moorage.server.auth import Principal, signed_in

log = logging.getLogger("moorage.server.session")

router = APIRouter(prefix="/session", tags=["session"])


class SignIn(Body):
    username: str = Field(min_length=1, max_length=200)
    password: SecretStr


class PasswordChange(Body):
    old_password: SecretStr
    new_password: SecretStr


class SessionOut(BaseModel):
    username: str
    role: str
    csrf_token: str = Field(description="Send it as the X-CSRF-Token header on every change.")


def json_only(request: Request) -> None:
    """Refuse a sign-in that a form of another site could send."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/json":
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail="sign in with a JSON body (Content-Type: application/json)",
        )


def _limiter(request: Request, ctx: Ctx) -> sessions.SignInLimiter:
    limiter: sessions.SignInLimiter | None = getattr(request.app.state, "signin_limiter", None)
    if limiter is None:
        limiter = sessions.SignInLimiter.of(ctx.settings)
        request.app.state.signin_limiter = limiter
    return limiter


def _secure(request: Request, ctx: Ctx) -> bool:
    public = (ctx.settings.public_url or "").strip().lower()
    return request.url.scheme == "https" or public.startswith("https://")


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("", dependencies=[Depends(json_only)])
async def sign_in(body: SignIn, request: Request, response: Response, ctx: Ctx) -> SessionOut:
    """Sign in with a username and password: sets the session cookie, answers the CSRF token.
    A wrong password and an unknown user get the same answer, in about the same time."""
    now = ctx.clock()
    address = _address(request)
    limiter = _limiter(request, ctx)
    wait = limiter.begin(body.username, address, now)
    if wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"too many failed sign-ins; try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    user = await ctx.db(lambda s: _candidate(s, body.username))
    password = body.password.get_secret_value()
    stored = user[1] if user else None
    matches = await anyio.to_thread.run_sync(sessions.verify_password, stored, password)
    if not matches or user is None:
        log.info("sign-in refused from %s: %s", address, f"user {user[2]}" if user else "unknown user")
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=sessions.WRONG_CREDENTIALS)
    user_id, stored_hash, username, disabled = user
    if disabled:
        log.info("sign-in refused from %s: user %s is disabled", address, username)
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="this user is disabled; ask an admin")
    new_hash = await anyio.to_thread.run_sync(sessions.rehashed, stored_hash, password)
    policy = sessions.SessionPolicy.of(ctx.settings)
    previous = request.cookies.get(sessions.COOKIE_NAME)
    started = await ctx.db(
        lambda s: sessions.start_session(
            s, user_id, now, policy, new_password_hash=new_hash, replaces=previous
        )
    )
    if started is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=sessions.WRONG_CREDENTIALS)
    limiter.succeeded(body.username, address, now)
    who, secret = started
    log.info("user %s signed in from %s", who.username, address)
    response.set_cookie(
        sessions.COOKIE_NAME,
        secret,
        max_age=ctx.settings.session_max_seconds,
        path="/",
        secure=_secure(request, ctx),
        httponly=True,
        samesite=ctx.settings.session_cookie_samesite,
    )
    _no_store(response)
    return SessionOut(username=who.username, role=who.role, csrf_token=sessions.csrf_token(secret))


def _candidate(session: Session, username: str) -> tuple[str, str, str, bool] | None:
    user = sessions.find_user(session, username)
    if user is None:
        return None
    return user.id, user.password_hash, user.username, user.disabled_at is not None


@router.get("")
async def whoami(
    request: Request, response: Response, who: Annotated[Principal, Depends(signed_in)]
) -> SessionOut:
    """The signed-in user and the session's CSRF token (401 when not signed in)."""
    assert who.username is not None
    _no_store(response)
    return SessionOut(
        username=who.username,
        role=who.scopes[0] if who.scopes else "",
        csrf_token=sessions.csrf_token(request.cookies[sessions.COOKIE_NAME]),
    )


@router.delete("", status_code=status.HTTP_204_NO_CONTENT)
async def sign_out(request: Request, ctx: Ctx) -> Response:
    """Sign out: the session is revoked on the server and the cookie removed (also when it had ended)."""
    secret = request.cookies.get(sessions.COOKIE_NAME)
    if secret:
        now = ctx.clock()
        await ctx.db(lambda s: sessions.end_session(s, secret, now))
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(
        sessions.COOKIE_NAME,
        path="/",
        secure=_secure(request, ctx),
        httponly=True,
        samesite=ctx.settings.session_cookie_samesite,
    )
    _no_store(response)
    return response


@router.post("/password", status_code=status.HTTP_204_NO_CONTENT)
async def change_own_password(
    body: PasswordChange, request: Request, ctx: Ctx, who: Annotated[Principal, Depends(signed_in)]
) -> Response:
    """Change one's own password with the current one. The user's other sessions end; this one stays."""
    assert who.username is not None
    username = who.username
    new = body.new_password.get_secret_value()
    sessions.check_password_rules(new)
    now = ctx.clock()
    address = _address(request)
    limiter = _limiter(request, ctx)
    wait = limiter.begin(username, address, now)
    if wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"too many wrong passwords; try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    user = await ctx.db(lambda s: _candidate(s, username))
    ok = await anyio.to_thread.run_sync(
        sessions.verify_password, user[1] if user else None, body.old_password.get_secret_value()
    )
    if not ok:
        log.info("password change of user %s refused: wrong current password", username)
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="the current password is wrong")
    limiter.succeeded(username, address, now)
    digest = await anyio.to_thread.run_sync(sessions.hash_password, new)
    await ctx.db(lambda s: sessions.set_password_hash(s, username, digest, now, keep_session=who.session_id))
    log.info("user %s changed their password", username)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
