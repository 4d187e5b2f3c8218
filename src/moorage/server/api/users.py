"""/api/v1/users: the web UI's users (admin only). Passwords go in as write-only fields; neither they
nor their hashes ever come out. Deleting or disabling a user, or setting their password, ends their
sessions."""

from datetime import datetime

import anyio
from fastapi import APIRouter, status
from pydantic import BaseModel, Field, SecretStr

from moorage.server import sessions
from moorage.server.api.deps import Admin, Ctx
from moorage.server.api.schemas import Request
from moorage.server.db.models import User
from moorage.server.sessions import Role

router = APIRouter(prefix="/users", tags=["users"])


class UserCreate(Request):
    username: str = Field(min_length=1, max_length=64)
    role: Role
    password: SecretStr = Field(description=f"At least {sessions.MIN_PASSWORD_CHARS} characters.")


class UserUpdate(Request):
    role: Role | None = None
    disabled: bool | None = Field(default=None, description="true ends the user's sessions.")


class PasswordSet(Request):
    password: SecretStr = Field(description=f"At least {sessions.MIN_PASSWORD_CHARS} characters.")


class UserOut(BaseModel):
    id: str
    username: str
    role: str
    created_at: datetime
    last_login_at: datetime | None
    disabled_at: datetime | None
    disabled: bool

    @classmethod
    def of(cls, row: User) -> "UserOut":
        return cls(
            id=row.id,
            username=row.username,
            role=row.role,
            created_at=row.created_at,
            last_login_at=row.last_login_at,
            disabled_at=row.disabled_at,
            disabled=row.disabled_at is not None,
        )


@router.get("")
async def list_users(ctx: Ctx, _who: Admin) -> list[UserOut]:
    return await ctx.db(lambda s: [UserOut.of(u) for u in sessions.list_users(s)])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_user(body: UserCreate, ctx: Ctx, _who: Admin) -> UserOut:
    password = body.password.get_secret_value()
    sessions.check_new_user(body.username, body.role.value, password)
    digest = await anyio.to_thread.run_sync(sessions.hash_password, password)
    return await ctx.db(lambda s: UserOut.of(sessions.create_user(s, body.username, body.role.value, digest)))


@router.patch("/{username}")
async def update_user(username: str, body: UserUpdate, ctx: Ctx, _who: Admin) -> UserOut:
    role = body.role.value if body.role else None
    return await ctx.db(
        lambda s: UserOut.of(
            sessions.update_user(s, username, ctx.clock(), role=role, disabled=body.disabled)
        )
    )


@router.delete("/{username}")
async def delete_user(username: str, ctx: Ctx, _who: Admin) -> UserOut:
    return await ctx.db(lambda s: UserOut.of(sessions.delete_user(s, username)))


@router.post("/{username}/password")
async def set_password(username: str, body: PasswordSet, ctx: Ctx, _who: Admin) -> UserOut:
    """Set a user's password (they sign in again everywhere)."""
    password = body.password.get_secret_value()
    sessions.check_password_rules(password)
    await ctx.db(lambda s: sessions.get_user(s, username))  # 404 before the slow hash
    digest = await anyio.to_thread.run_sync(sessions.hash_password, password)
    return await ctx.db(lambda s: UserOut.of(sessions.set_password_hash(s, username, digest, ctx.clock())))
