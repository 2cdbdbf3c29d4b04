"""Routes of the annotator's HTTP API (imported only when FastAPI is installed).

Request bodies are JSON objects validated by the pydantic models below; an image is named by
its path relative to the served folder and an object by its integer id.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from fastapi import FastAPI, Query
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from clicksam.server.export import EXPORT_FORMATS, coco_dataset, png_zip, polygons_dataset
from clicksam.server.service import AnnotatorService

__all__ = ["add_routes"]


class OpenBody(BaseModel):
    """An image, by name."""

    model_config = ConfigDict(extra="forbid")
    image: str = Field(max_length=1024)


class Target(OpenBody):
    """An object of an image."""

    object: int = Field(ge=1)


class NewObject(OpenBody):
    """A new object's label and method (the server's default method when omitted)."""

    label: str = Field(default="object", max_length=100)
    method: Optional[str] = Field(default=None, max_length=64)


class ObjectChange(Target):
    """A new label and/or method for an object."""

    label: Optional[str] = Field(default=None, max_length=100)
    method: Optional[str] = Field(default=None, max_length=64)


class ClickBody(Target):
    """A click at pixel (x, y); ``positive`` False for background."""

    x: float = Field(allow_inf_nan=False)
    y: float = Field(allow_inf_nan=False)
    positive: StrictBool = True


class BoxBody(Target):
    """A box by two corners, in pixels."""

    x0: float = Field(allow_inf_nan=False)
    y0: float = Field(allow_inf_nan=False)
    x1: float = Field(allow_inf_nan=False)
    y1: float = Field(allow_inf_nan=False)


def add_routes(app: FastAPI, service: AnnotatorService, token_required: bool, max_body_bytes: int,
               static_dir: Path) -> None:
    """Register the page, the static files and the ``/api`` routes on ``app``."""

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(static_dir / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=static_dir), name="static")

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        return {"model": service.factory.model_name, "methods": service.method_options(),
                "default_method": service.default_method, "token_required": token_required,
                "max_body_bytes": max_body_bytes}

    @app.get("/api/images")
    def images() -> dict[str, Any]:
        return {"images": service.images(), "progress": service.progress()}

    @app.get("/api/progress")
    def progress() -> dict[str, Any]:
        return service.progress()

    @app.get("/api/image")
    def image(name: str = Query(max_length=1024)) -> Response:
        return Response(service.image_png(name), media_type="image/png",
                        headers={"Cache-Control": "private, max-age=600"})

    @app.get("/api/annotation")
    def annotation(name: str = Query(max_length=1024)) -> dict[str, Any]:
        return service.annotation(name)

    @app.post("/api/open")
    def open_image(body: OpenBody) -> dict[str, Any]:
        return service.open_image(body.image)

    @app.post("/api/objects")
    def create_object(body: NewObject) -> dict[str, Any]:
        return service.create_object(body.image, body.label, body.method)

    @app.patch("/api/objects")
    def update_object(body: ObjectChange) -> dict[str, Any]:
        return service.update_object(body.image, body.object, body.label, body.method)

    @app.delete("/api/objects")
    def delete_object(image: str = Query(max_length=1024), object: int = Query(ge=1)) -> dict[str, Any]:
        service.delete_object(image, object)
        return {"deleted": object}

    @app.post("/api/click")
    def click(body: ClickBody) -> dict[str, Any]:
        return service.click(body.image, body.object, body.x, body.y, body.positive)

    @app.post("/api/box")
    def box(body: BoxBody) -> dict[str, Any]:
        return service.box(body.image, body.object, body.x0, body.y0, body.x1, body.y1)

    @app.post("/api/undo")
    def undo(body: Target) -> dict[str, Any]:
        return service.undo(body.image, body.object)

    @app.post("/api/redo")
    def redo(body: Target) -> dict[str, Any]:
        return service.redo(body.image, body.object)

    @app.post("/api/reset")
    def reset(body: Target) -> dict[str, Any]:
        return service.reset(body.image, body.object)

    @app.get("/api/export")
    def export(format: str = Query(max_length=16)) -> Response:
        if format not in EXPORT_FORMATS:
            return JSONResponse({"detail": f"unknown export format {format!r}; choose one of "
                                           f"{', '.join(EXPORT_FORMATS)}"}, status_code=422)
        if format == "png":
            return Response(png_zip(service.store), media_type="application/zip",
                            headers={"Content-Disposition": 'attachment; filename="labels_png.zip"'})
        data = coco_dataset(service.store) if format == "coco" else polygons_dataset(service.store)
        return Response(json.dumps(data), media_type="application/json",
                        headers={"Content-Disposition": f'attachment; filename="annotations_{format}.json"'})
