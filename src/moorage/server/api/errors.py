"""Error responses: always {"detail": "<a sentence a person can act on>"}, plus details where useful.
Validation errors never echo the request input (it may hold secrets or megabytes of YAML)."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from moorage.server.bundle import BundleError
from moorage.server.secretbox import SecretBoxError
from moorage.server.service import Conflict, Invalid, NotFound, ServiceError

_STATUS: dict[type[ServiceError], int] = {NotFound: 404, Conflict: 409, Invalid: 422}


def _where(loc: Any) -> str:
    return ".".join(str(p) for p in loc) if isinstance(loc, list | tuple) else str(loc)


async def _service_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 400)
    return JSONResponse({"detail": exc.message}, status_code=status)


async def _bundle_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BundleError)
    return JSONResponse({"detail": exc.message}, status_code=413 if exc.too_large else 422)


async def _secretbox_error(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=500)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": _where(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    first = exc.errors()[0] if exc.errors() else {}
    if first.get("type") == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "")
        detail = f"request body is not valid JSON: {reason} at position {first['loc'][-1]}"
    else:
        detail = f"invalid request: {errors[0]['loc']}: {errors[0]['msg']}" if errors else "invalid request"
    return JSONResponse({"detail": detail, "errors": errors}, status_code=422)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(BundleError, _bundle_error)
    app.add_exception_handler(SecretBoxError, _secretbox_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
