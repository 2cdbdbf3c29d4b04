"""Errors the annotator raises for bad requests; the web app turns them into HTTP answers."""
from __future__ import annotations

__all__ = ["AnnotatorError", "NotFound", "BadInput", "NotReady", "Conflict", "UnreadableImage"]


class AnnotatorError(Exception):
    """A request the annotator cannot serve; ``status`` is the HTTP status code to answer with."""

    status: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(AnnotatorError):
    """Unknown image or object (404)."""

    status = 404


class BadInput(AnnotatorError):
    """Well-formed JSON whose values are wrong, e.g. a click outside the image (422)."""

    status = 422


class UnreadableImage(AnnotatorError):
    """An image of the folder that cannot be read (not an image, truncated, too many pixels,
    unsupported mode): every request about it is answered 422 with the reason and the fix."""

    status = 422


class Conflict(AnnotatorError):
    """The request does not fit the current state, e.g. an unavailable method (409)."""

    status = 409


class NotReady(AnnotatorError):
    """The image is still being encoded or its encoding failed (503, retry later)."""

    status = 503
