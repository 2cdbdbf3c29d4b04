"""The FastAPI app Label Studio talks to (its ML-backend protocol).

Routes: ``GET /health`` and ``GET /`` (status), ``POST /setup``, ``POST /predict``,
``POST /webhook`` (Label Studio creates this webhook when the backend is connected),
``GET /versions``. Errors are answered as the Label Studio backend SDK does:
``{"status": "ERROR", "error": message}`` with 422 for a bad request or image, 500 otherwise.
With ``basic_auth`` every route needs that user and password (Label Studio's "Basic
Authentication" option of the model connection).
"""
from __future__ import annotations

import base64
import hmac
import logging
from typing import Any, Optional

from clicksam.labelstudio.backend import LabelStudioBackend
from clicksam.labelstudio.images import ImageError
from clicksam.labelstudio.protocol import ProtocolError

__all__ = ["create_app"]

log = logging.getLogger("clicksam.labelstudio")


def _require_fastapi() -> None:
    try:
        import fastapi  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("clicksam label-studio needs FastAPI and uvicorn: pip install 'clicksam[web]'") from exc


def _basic_auth_ok(header: Optional[str], expected: tuple[str, str]) -> bool:
    if not header or not header.lower().startswith("basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    return hmac.compare_digest(user.encode(), expected[0].encode()) & hmac.compare_digest(
        password.encode(), expected[1].encode())


def create_app(backend: LabelStudioBackend, basic_auth: Optional[tuple[str, str]] = None) -> Any:
    """The app serving ``backend``; ``basic_auth`` = (user, password) protects every route."""
    _require_fastapi()
    from fastapi import Body, FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    app = FastAPI(title="clicksam Label Studio backend", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.backend = backend

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"status": "ERROR", "error": message}, status_code=status)

    @app.middleware("http")
    async def check_auth(request: Request, call_next: Any) -> Any:
        if basic_auth is not None and not _basic_auth_ok(request.headers.get("authorization"), basic_auth):
            return JSONResponse({"status": "ERROR", "error": "basic authentication required"}, status_code=401,
                                headers={"WWW-Authenticate": 'Basic realm="clicksam"'})
        return await call_next(request)

    @app.exception_handler(ProtocolError)
    async def protocol_error(_request: Request, exc: ProtocolError) -> JSONResponse:
        log.warning("bad request: %s", exc)
        return error(422, str(exc))

    @app.exception_handler(ImageError)
    async def image_error(_request: Request, exc: ImageError) -> JSONResponse:
        log.warning("image: %s", exc)
        return error(422, str(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(400, "the request body must be a JSON object: " + "; ".join(
            str(e.get("msg", "invalid")) for e in list(exc.errors())[:3]))

    @app.exception_handler(Exception)
    async def internal_error(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed")
        return error(500, f"{type(exc).__name__}: {exc}")

    @app.get("/")
    @app.get("/health")
    async def health() -> dict[str, Any]:
        return backend.health()

    @app.post("/setup")
    def setup(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008 - FastAPI's idiom
        return backend.setup(body)

    @app.post("/predict")
    def predict(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        return backend.predict(body)

    @app.post("/webhook")
    def webhook(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        return backend.webhook(body)

    @app.get("/versions")
    async def versions() -> dict[str, Any]:
        return {"versions": [backend.model_version]}

    return app
