"""``clicksam label-studio``: run clicksam as a Label Studio ML backend.

```
clicksam label-studio --model vit_b --checkpoint sam_vit_b_01ec64.pth --method stable-sam+sam-ref --port 9090
clicksam label-studio --print-config        # the labelling config to paste into Label Studio
```
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, Optional

from clicksam.commands.common import add_model_arguments, load_model

__all__ = ["add_arguments", "run", "build_backend", "CONFIG_PATH", "config_text"]

CONFIG_PATH = Path(__file__).resolve().parent / "config.xml"


def config_text() -> str:
    """The labelling config shipped with clicksam (paste it into Label Studio's Labeling Interface)."""
    return CONFIG_PATH.read_text(encoding="utf-8")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``clicksam label-studio``."""
    add_model_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    parser.add_argument("--port", type=int, default=9090, help="port (default 9090, Label Studio's usual one)")
    parser.add_argument("--label-studio-url", default=os.environ.get("LABEL_STUDIO_URL"),
                        help="Label Studio's address, e.g. http://127.0.0.1:8080, for downloading uploaded images "
                             "(default $LABEL_STUDIO_URL, else the hostname Label Studio sends to /setup)")
    parser.add_argument("--label-studio-api-key", default=os.environ.get("LABEL_STUDIO_API_KEY"),
                        help="Label Studio API key: a personal access token or a legacy token "
                             "(default $LABEL_STUDIO_API_KEY, else the token Label Studio sends to /setup)")
    parser.add_argument("--document-root", type=Path, default=None,
                        help="Label Studio's LOCAL_FILES_DOCUMENT_ROOT, to read local-files storage directly "
                             "(default $LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT)")
    parser.add_argument("--media-dir", type=Path, default=None,
                        help="Label Studio's media folder (<data dir>/media), to read uploaded images directly")
    parser.add_argument("--negative-label", action="append", default=None, metavar="LABEL",
                        help="a KeyPointLabels label that marks background clicks (repeatable; default "
                             "'Negative'); Alt-click gives a background click with any label")
    parser.add_argument("--embeddings", type=Path, default=None,
                        help="embedding cache folder (default $CLICKSAM_CACHE/embeddings, shared with serve/embed)")
    parser.add_argument("--max-tasks", type=int, default=8, help="task images kept encoded in memory (default 8)")
    parser.add_argument("--basic-auth", default=None, metavar="USER:PASSWORD",
                        help="require HTTP basic authentication (default $BASIC_AUTH_USER:$BASIC_AUTH_PASS if set)")
    parser.add_argument("--print-config", action="store_true", help="print the labelling config to paste and exit")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="log level (default info: one line per prediction)")


def _basic_auth(text: Optional[str]) -> Optional[tuple[str, str]]:
    if not text:
        user, password = os.environ.get("BASIC_AUTH_USER"), os.environ.get("BASIC_AUTH_PASS")
        return (user, password) if user and password else None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ValueError("--basic-auth must be USER:PASSWORD")
    return user, password


def build_backend(args: argparse.Namespace, model: Any = None) -> Any:
    """The :class:`LabelStudioBackend` the arguments describe (``model`` overrides building one)."""
    from clicksam.cache import EmbeddingCache, default_cache_dir
    from clicksam.labelstudio.backend import LabelStudioBackend
    from clicksam.labelstudio.images import ImageResolver, LabelStudioConnection, default_document_root
    from clicksam.labelstudio.sessions import TaskSessions
    from clicksam.predictor import SamPredictor
    from clicksam.session import InteractiveSession

    if args.max_tasks < 1:
        raise ValueError(f"--max-tasks must be >= 1, got {args.max_tasks}")
    model = load_model(args) if model is None else model
    method = InteractiveSession(SamPredictor(model), method=args.method).method  # validated before serving
    cache = EmbeddingCache(args.embeddings or default_cache_dir() / "embeddings")
    connection = None
    if args.label_studio_url:
        connection = LabelStudioConnection(args.label_studio_url, args.label_studio_api_key)
    elif args.label_studio_api_key:
        raise ValueError("--label-studio-api-key needs --label-studio-url (the address the key belongs to)")
    images = ImageResolver(args.document_root or default_document_root(), args.media_dir, connection)
    version = f"clicksam-{getattr(model, 'model_name', args.model)}-{method}"
    if getattr(model, "random_weights", False):
        version += "-random-weights"  # shown in Label Studio beside every prediction
    return LabelStudioBackend(TaskSessions(model, method, cache, args.max_tasks), images, version,
                              args.negative_label or ["Negative"])


def run(args: argparse.Namespace) -> int:
    """Serve until stopped (or print the labelling config)."""
    if args.print_config:
        sys.stdout.write(config_text())
        return 0
    try:
        import uvicorn
    except ImportError as exc:
        raise RuntimeError("clicksam label-studio needs FastAPI and uvicorn: pip install 'clicksam[web]'") from exc
    from clicksam.labelstudio.app import create_app

    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be 1-65535, got {args.port}")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    backend = build_backend(args)
    app = create_app(backend, _basic_auth(args.basic_auth))
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"clicksam Label Studio backend: {backend.model_version} at http://{shown}:{args.port}", flush=True)
    print("connect it in Label Studio: project Settings > Model > Connect Model, this URL, with "
          "'Interactive preannotations' on", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=3)
    return 0
