"""Routes of the annotator's HTTP API (imported only when FastAPI is installed).

Request bodies are JSON objects validated by the pydantic models below; an image is named by
its path relative to the served folder and an object by its integer id.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from fastapi import FastAPI, Query
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from clicksam.server.export import EXPORT_FORMATS, SKIPPED_HEADER, coco_dataset, png_zip, polygons_dataset
from clicksam.server.service import AnnotatorService
from clicksam.server.steps import MAX_BRUSH_RADIUS, MAX_STROKE_POINTS, MIN_BRUSH_RADIUS
from clicksam.server.store import REVIEW_STATES

__all__ = ["add_routes"]


Finite = Annotated[float, Field(allow_inf_nan=False)]


class OpenBody(BaseModel):
    """An image, by name."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    image: str = Field(max_length=1024)


class Target(OpenBody):
    """An object of an image."""

    object: int = Field(ge=1)


class HistoryBody(OpenBody):
    """Undo/redo: the image's last step, or the object's when ``object`` is given."""

    object: Optional[int] = Field(default=None, ge=1)


class NewObject(OpenBody):
    """A new object: its class (by id, or by name: created when new; default the first class) and
    method (default the server's)."""

    label: Optional[str] = Field(default=None, max_length=100)
    class_id: Optional[int] = Field(default=None, alias="class", ge=1)
    method: Optional[str] = Field(default=None, max_length=64)


class ObjectChange(Target):
    """A new class, method or display flags for an object."""

    label: Optional[str] = Field(default=None, max_length=100)
    class_id: Optional[int] = Field(default=None, alias="class", ge=1)
    method: Optional[str] = Field(default=None, max_length=64)
    hidden: Optional[StrictBool] = None
    locked: Optional[StrictBool] = None
    solo: Optional[StrictBool] = None


class ClickBody(Target):
    """A click at pixel (x, y); ``positive`` False for background."""

    x: Finite
    y: Finite
    positive: StrictBool = True


class BoxBody(Target):
    """A box by two corners, in pixels."""

    x0: Finite
    y0: Finite
    x1: Finite
    y1: Finite


class StrokeBody(Target):
    """A brush stroke: a polyline of XY image pixels painted or erased with a round brush."""

    mode: Literal["paint", "erase"]
    radius: float = Field(ge=MIN_BRUSH_RADIUS, le=MAX_BRUSH_RADIUS)
    points: list[tuple[Finite, Finite]] = Field(min_length=1, max_length=MAX_STROKE_POINTS)


class ReviewBody(OpenBody):
    """An image's review status."""

    review: Literal[REVIEW_STATES]  # type: ignore[valid-type]


class NewClass(BaseModel):
    """A class to add to the list."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=100)
    colour: Optional[str] = Field(default=None, max_length=7)


class ClassChange(BaseModel):
    """A new name and/or colour for a class."""

    model_config = ConfigDict(extra="forbid")
    id: int = Field(ge=1)
    name: Optional[str] = Field(default=None, max_length=100)
    colour: Optional[str] = Field(default=None, max_length=7)


def add_routes(app: FastAPI, service: AnnotatorService, token_required: bool, max_body_bytes: int,
               static_dir: Path) -> None:
    """Register the page, the static files and the ``/api`` routes on ``app``."""

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(static_dir / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=static_dir), name="static")

    catalog = service.catalog

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        return {"model": service.factory.model_name,
                "random_weights": bool(getattr(service.factory, "random_weights", False)),
                "methods": service.method_options(),
                "default_method": service.default_method, "token_required": token_required,
                "max_body_bytes": max_body_bytes, "review_states": list(REVIEW_STATES),
                "brush": {"min_radius": MIN_BRUSH_RADIUS, "max_radius": MAX_BRUSH_RADIUS,
                          "max_points": MAX_STROKE_POINTS}}

    @app.get("/api/images")
    def images() -> dict[str, Any]:
        listing = catalog.images()
        return {"images": listing, "reviews": catalog.review_counts(listing), "progress": catalog.progress()}

    @app.get("/api/progress")
    def progress() -> dict[str, Any]:
        return catalog.progress()

    def picture(data: tuple[bytes, str], version: Optional[str]) -> Response:
        # a URL with the file's version (from /api/annotation) names these bytes for good
        cache = "private, max-age=86400, immutable" if version else "private, no-cache"
        return Response(data[0], media_type=data[1], headers={"Cache-Control": cache})

    @app.get("/api/image")
    def image(name: str = Query(max_length=1024), v: Optional[str] = Query(default=None, max_length=64)) -> Response:
        return picture(service.display_image(name), v)

    @app.get("/api/tile")
    def tile(name: str = Query(max_length=1024), level: int = Query(ge=0, le=31), col: int = Query(ge=0),
             row: int = Query(ge=0), v: Optional[str] = Query(default=None, max_length=64)) -> Response:
        return picture(service.tile(name, level, col, row), v)

    @app.get("/api/annotation")
    def annotation(name: str = Query(max_length=1024)) -> dict[str, Any]:
        return service.annotation(name)

    @app.post("/api/open")
    def open_image(body: OpenBody) -> dict[str, Any]:
        return service.open_image(body.image)

    @app.post("/api/review")
    def review(body: ReviewBody) -> dict[str, Any]:
        return service.set_review(body.image, body.review)

    @app.post("/api/objects")
    def create_object(body: NewObject) -> dict[str, Any]:
        return service.create_object(body.image, body.label, body.class_id, body.method)

    @app.patch("/api/objects")
    def update_object(body: ObjectChange) -> dict[str, Any]:
        return service.update_object(body.image, body.object, body.label, body.class_id, body.method,
                                     body.hidden, body.locked, body.solo)

    @app.delete("/api/objects")
    def delete_object(image: str = Query(max_length=1024), object: int = Query(ge=1)) -> dict[str, Any]:
        return service.delete_object(image, object)

    @app.post("/api/click")
    def click(body: ClickBody) -> dict[str, Any]:
        return service.click(body.image, body.object, body.x, body.y, body.positive)

    @app.post("/api/box")
    def box(body: BoxBody) -> dict[str, Any]:
        return service.box(body.image, body.object, body.x0, body.y0, body.x1, body.y1)

    @app.post("/api/stroke")
    def stroke(body: StrokeBody) -> dict[str, Any]:
        return service.stroke(body.image, body.object, body.mode, body.radius, body.points)

    @app.post("/api/undo")
    def undo(body: HistoryBody) -> dict[str, Any]:
        return service.undo(body.image, body.object)

    @app.post("/api/redo")
    def redo(body: HistoryBody) -> dict[str, Any]:
        return service.redo(body.image, body.object)

    @app.post("/api/reset")
    def reset(body: Target) -> dict[str, Any]:
        return service.reset(body.image, body.object)

    @app.get("/api/classes")
    def classes() -> dict[str, Any]:
        return {"classes": catalog.classes()}

    @app.post("/api/classes")
    def add_class(body: NewClass) -> dict[str, Any]:
        return catalog.add_class(body.name, body.colour)

    @app.patch("/api/classes")
    def update_class(body: ClassChange) -> dict[str, Any]:
        return catalog.update_class(body.id, body.name, body.colour)

    @app.delete("/api/classes")
    def remove_class(id: int = Query(ge=1)) -> dict[str, Any]:
        catalog.remove_class(id)
        return {"removed": id}

    @app.get("/api/export")
    def export(format: str = Query(max_length=16)) -> Response:
        if format not in EXPORT_FORMATS:
            return JSONResponse({"detail": f"unknown export format {format!r}; choose one of "
                                           f"{', '.join(EXPORT_FORMATS)}"}, status_code=422)
        skipped: list[str] = []  # corrupt annotation files: left out, named in the export and a header
        if format == "png":
            body, media, filename = png_zip(service.store, skipped=skipped), "application/zip", "labels_png.zip"
        else:
            data = (coco_dataset if format == "coco" else polygons_dataset)(service.store, skipped=skipped)
            body, media, filename = json.dumps(data).encode(), "application/json", f"annotations_{format}.json"
        headers = {"Content-Disposition": f'attachment; filename="{filename}"', SKIPPED_HEADER: str(len(skipped))}
        return Response(body, media_type=media, headers=headers)
