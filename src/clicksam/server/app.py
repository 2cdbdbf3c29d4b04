"""The FastAPI application of the web annotator.

``create_app(service, token=None)`` builds the app around an :class:`AnnotatorService` (which
holds the injectable session factory). Writes (POST/PATCH/DELETE) need the ``X-Clicksam-Token``
header when a token is set, must be ``application/json`` and at most ``max_body_bytes`` long;
bad requests get a 4xx with a ``detail`` message.
"""
from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

from clicksam.server.errors import AnnotatorError
from clicksam.server.service import AnnotatorService

__all__ = ["create_app", "RequestGuard", "STATIC_DIR", "TOKEN_HEADER", "MAX_BODY_BYTES", "LOOPBACK_HOSTS"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
TOKEN_HEADER = "x-clicksam-token"
MAX_BODY_BYTES = 64 * 1024
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _require_web() -> Any:
    try:
        import fastapi
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the web annotator needs FastAPI and uvicorn: pip install 'clicksam[web]'") from exc
    return fastapi


class RequestGuard:
    """ASGI middleware: Host check, token check for writes, JSON content type, request size limit.

    ``allowed_hosts`` (host names without port; ``None`` = any) defends a loopback server against
    DNS rebinding: a page from another site that resolves its own name to 127.0.0.1 is refused.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], token: Optional[str], max_body_bytes: int,
                 allowed_hosts: Optional[frozenset[str]] = None) -> None:
        self.app, self.token, self.max_body_bytes = app, token, max_body_bytes
        self.allowed_hosts = allowed_hosts

    async def _reject(self, send: Callable[..., Awaitable[None]], status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Awaitable[dict[str, Any]]],
                       send: Callable[..., Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.allowed_hosts is not None and _host_name(headers.get("host", "")) not in self.allowed_hosts:
            await self._reject(send, 400, "unexpected Host header; open the page through the address the "
                                          "server printed")
            return
        if scope["method"] in WRITE_METHODS and self.token is not None:
            given = headers.get(TOKEN_HEADER)
            if not given:
                await self._reject(send, 401, f"this server requires the {TOKEN_HEADER} header for changes "
                                              "(open the page with ?token=... as printed at start-up)")
                return
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                await self._reject(send, 403, "wrong access token")
                return
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await self._reject(send, 413, f"request body larger than {self.max_body_bytes} bytes")
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body_bytes:
                await self._reject(send, 413, f"request body larger than {self.max_body_bytes} bytes")
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if scope["method"] in WRITE_METHODS and body:
            content_type = headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type != "application/json":
                await self._reject(send, 415, "request body must be JSON (Content-Type: application/json)")
                return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _host_name(host: str) -> str:
    """``"[::1]:8000"`` -> ``"::1"``, ``"localhost:8000"`` -> ``"localhost"``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _validation_message(errors: list[dict[str, Any]]) -> tuple[int, str]:
    if any(e.get("type") == "json_invalid" for e in errors):
        where = next(e for e in errors if e.get("type") == "json_invalid")
        return 400, f"malformed JSON: {where.get('ctx', {}).get('error', where.get('msg', ''))}"
    parts = []
    for error in errors[:5]:
        location = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
        parts.append(f"{location or 'body'}: {error.get('msg', 'invalid')}")
    return 422, "; ".join(parts)


def create_app(service: AnnotatorService, token: Optional[str] = None,
               max_body_bytes: int = MAX_BODY_BYTES, allowed_hosts: Optional[frozenset[str]] = None) -> Any:
    """Build the FastAPI app (the page at ``/``, the JSON API under ``/api``).

    Args:
        service: the annotator logic (images, store, session factory).
        token: when set, every write must carry it in the ``X-Clicksam-Token`` header.
        max_body_bytes: the largest request body accepted (413 beyond).
        allowed_hosts: accepted ``Host`` header names (``None``: any); ``LOOPBACK_HOSTS`` for a
            server bound to loopback.
    """
    _require_web()
    from contextlib import asynccontextmanager

    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    from clicksam.server.routes import add_routes

    @asynccontextmanager
    async def lifespan(_app: Any) -> Any:
        yield
        service.close()

    app = FastAPI(title="clicksam annotator", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.service = service

    @app.exception_handler(AnnotatorError)
    async def annotator_error(_request: Any, exc: AnnotatorError) -> JSONResponse:
        headers = {"Retry-After": "2"} if exc.status == 503 else None
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Any, exc: RequestValidationError) -> JSONResponse:
        status, message = _validation_message(list(exc.errors()))
        return JSONResponse({"detail": message}, status_code=status)

    add_routes(app, service, token is not None, max_body_bytes, STATIC_DIR)
    app.add_middleware(RequestGuard, token=token, max_body_bytes=max_body_bytes, allowed_hosts=allowed_hosts)
    return app
