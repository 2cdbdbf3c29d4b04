"""The web annotator: a FastAPI app and a page to segment images by clicking, with every method.

Run it with ``clicksam serve --images DIR``; export with ``clicksam export DIR --format coco``.
FastAPI and uvicorn come with the ``[web]`` extra and are imported only when the app is built.
"""
from __future__ import annotations

__all__ = ["create_app", "AnnotatorService", "SessionFactory", "SamSessionFactory"]


def __getattr__(name: str):  # lazy: importing clicksam.server must not import FastAPI or torch
    if name == "create_app":
        from clicksam.server.app import create_app

        return create_app
    if name == "AnnotatorService":
        from clicksam.server.service import AnnotatorService

        return AnnotatorService
    if name in ("SessionFactory", "SamSessionFactory"):
        from clicksam.server import backend

        return getattr(backend, name)
    raise AttributeError(f"module 'clicksam.server' has no attribute {name!r}")
