"""``clicksam serve``: run the web annotator on a folder of images."""
from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import secrets
import socket
import sys
from pathlib import Path
from typing import Any, Optional

from clicksam.commands.common import RANDOM_WEIGHTS_HELP

__all__ = ["add_arguments", "run", "is_loopback", "build_app", "bind_socket"]

TOKEN_ENV = "CLICKSAM_TOKEN"
CLASS_FILE = "classes.txt"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``clicksam serve``."""
    from clicksam.methods import method_help

    parser.add_argument("--model", default="vit_b", help="registry name, e.g. vit_b, sam2.1_hiera_t, hq_vit_b (`clicksam models` lists them; default vit_b)")
    parser.add_argument("--checkpoint", action="append", default=None, metavar="PATH",
                        help="weights to load (repeat: base SAM file first, then method files)")
    parser.add_argument("--method", action="append", default=None, metavar="METHOD",
                        help=f"method(s) to offer: {method_help()} (repeatable; the first is the default)")
    parser.add_argument("--images", required=True, type=Path, help="folder of images to annotate")
    parser.add_argument("--annotations", type=Path, default=None,
                        help="where annotations are saved (default IMAGES/.clicksam/annotations)")
    parser.add_argument("--classes", type=Path, default=None, metavar="FILE",
                        help="class names, one per line, added to the folder's class list when missing "
                             f"(default: IMAGES/{CLASS_FILE} when it exists)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--token", default=None,
                        help=f"access token for changes (default ${TOKEN_ENV}, or a random one when --host "
                             "is not loopback)")
    parser.add_argument("--prefetch", type=int, default=2, help="images to encode ahead of the open one (default 2)")
    parser.add_argument("--decode-slots", type=int, default=4,
                        help="prompts computed at the same time, the rest queue (default 4)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="allow pickled objects in a checkpoint (e.g. a method's official training checkpoint); trusted files only")
    parser.add_argument("--random-weights", action="store_true", help=RANDOM_WEIGHTS_HELP)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def build_app(images: Path, model: str = "vit_b", checkpoint: Optional[list[str]] = None,
              methods: Optional[list[str]] = None, annotations: Optional[Path] = None,
              token: Optional[str] = None, prefetch: int = 2, device: str = "cpu",
              trust_checkpoint: bool = False, loopback_only: bool = False, decode_slots: int = 4,
              classes: Optional[Path] = None, random_weights: bool = False) -> Any:
    """Build the model, the session factory, the service and the FastAPI app.

    ``loopback_only`` makes the app refuse requests whose Host header is not a loopback name.
    ``classes`` (default ``IMAGES/classes.txt`` when present) names classes to add to the folder's
    class list; ``app.state.classes_added`` is ``(file, names added)`` or ``None``.
    ``random_weights``: a real size with random weights on purpose (see :func:`clicksam.build_sam`);
    the page is told (``/api/info`` ``random_weights``).
    """
    from clicksam.build import build_sam
    from clicksam.server.app import LOOPBACK_HOSTS, create_app
    from clicksam.server.backend import SamSessionFactory, parse_method_list
    from clicksam.server.classes import read_class_file
    from clicksam.server.images import ImageFolder
    from clicksam.server.service import AnnotatorService
    from clicksam.server.store import AnnotationStore

    if prefetch < 0:
        raise ValueError(f"--prefetch must be >= 0, got {prefetch}")
    folder = ImageFolder(images)
    store = AnnotationStore(annotations if annotations is not None else folder.root / ".clicksam" / "annotations",
                            images=folder.root)
    class_file = classes if classes is not None else folder.root / CLASS_FILE
    added = None
    if classes is not None or class_file.is_file():
        added = (class_file, [c.name for c in store.classes.extend(read_class_file(class_file))])
    stages, default_method = parse_method_list(methods or [])
    sam = build_sam(model, checkpoint=checkpoint, methods=stages, device=device, trust_checkpoint=trust_checkpoint,
                    random_weights=random_weights)
    factory = SamSessionFactory(sam)  # embeddings cached under $CLICKSAM_CACHE/embeddings
    service = AnnotatorService(folder, store, factory, prefetch=prefetch, decode_slots=decode_slots)
    options = {o["name"]: o for o in service.method_options()}
    if default_method in options and options[default_method]["available"]:
        service.default_method = default_method
    elif methods:
        raise ValueError(f"method {default_method!r} is unavailable: {options.get(default_method, {}).get('reason')}")
    app = create_app(service, token=token, allowed_hosts=LOOPBACK_HOSTS if loopback_only else None)
    app.state.classes_added = added
    return app


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port); one clear error when taken."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise ValueError(f"--host {host!r} is not an address of this machine ({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    try:
        if os.name != "nt":  # as uvicorn does: a restart can reuse a port in TIME_WAIT (Windows would share it)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ValueError(f"port {port} on {host} is already in use (another clicksam serve?); "
                             "stop it or choose another --port") from None
        raise ValueError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def run(args: argparse.Namespace) -> int:
    """Start the server and block until it is stopped."""
    from clicksam.commands.common import announce_weights, cli_weights_message, resolve_device

    try:
        import uvicorn
    except ImportError as exc:
        raise RuntimeError("clicksam serve needs FastAPI and uvicorn: pip install 'clicksam[web]'") from exc
    if not 0 <= args.port < 65536:
        raise ValueError(f"--port must be 1-65535 (0: any free port), got {args.port}")
    resolve_device(args.device)
    token = args.token or os.environ.get(TOKEN_ENV) or None
    if token is None and not is_loopback(args.host):
        token = secrets.token_urlsafe(16)
    sock = bind_socket(args.host, args.port)  # a busy port fails now, before the model loads
    try:
        with cli_weights_message():
            app = build_app(args.images, args.model, args.checkpoint, args.method, args.annotations, token,
                            args.prefetch, args.device, args.trust_checkpoint, loopback_only=is_loopback(args.host),
                            decode_slots=args.decode_slots, classes=args.classes, random_weights=args.random_weights)
        service = app.state.service
        announce_weights(service.factory.model, args.model)
        shown_host = f"[{args.host}]" if ":" in args.host else args.host
        url = f"http://{shown_host}:{sock.getsockname()[1]}/" + (f"?token={token}" if token else "")
        print(f"clicksam annotator: {len(service.folder.names)} image(s) in {service.folder.root}, "
              f"model {args.model}, default method {service.default_method}", flush=True)
        print(f"annotations saved in {service.store.root}", flush=True)
        names = [c.name for c in service.store.classes.classes]
        print(f"classes: {', '.join(names) if names else '(none yet; add them in the page)'}", flush=True)
        if app.state.classes_added is not None:
            file, added = app.state.classes_added
            print(f"{len(added)} class(es) added from {file}" + (f": {', '.join(added)}" if added else ""), flush=True)
        if not is_loopback(args.host):
            print("warning: the server is reachable from other machines; changes need the token", file=sys.stderr)
        print(f"open {url}", flush=True)  # the socket listens already: the address answers from now on
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=3)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
    return 0
