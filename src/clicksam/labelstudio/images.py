"""Where a Label Studio task's image lives, and reading it through clicksam's one image reader.

A task's image value is one of:

- ``/data/local-files/?d=REL`` (Label Studio's *local files* storage): read from
  ``DOCUMENT_ROOT/REL`` when the backend knows the document root (``--document-root`` or
  ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``), else downloaded from Label Studio;
- ``/data/upload/P/NAME`` (a file uploaded to Label Studio): read from ``MEDIA/upload/P/NAME``
  when the backend knows Label Studio's media folder (``--media-dir``), else downloaded from
  Label Studio with its API key;
- ``http(s)://...``: downloaded (with the API key only when it is Label Studio's own address).

Label Studio's address and key come from ``--label-studio-url`` / ``--label-studio-api-key``
(or ``LABEL_STUDIO_URL`` / ``LABEL_STUDIO_API_KEY``), else from what Label Studio sends to
``/setup`` (its hostname and the project owner's legacy token). A personal access token (a JWT)
is exchanged for a short-lived access token at ``/api/token/refresh/``.
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Optional

import numpy as np

__all__ = ["ImageError", "ImageResolver", "LabelStudioConnection"]

MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024
ACCESS_TOKEN_SECONDS = 240  # Label Studio's access tokens live 5 minutes; renew before that


class ImageError(ValueError):
    """A task image that cannot be found, fetched or read (answered with 422 and this message)."""


@dataclass
class LabelStudioConnection:
    """Label Studio's base URL (``http://host:port``) and an API key (legacy token or JWT)."""

    url: str
    api_key: Optional[str] = None

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"the Label Studio URL must start with http:// or https://, got {self.url!r}")
        self.url = self.url.rstrip("/")
        self._access: Optional[tuple[str, float]] = None
        self._lock = threading.Lock()

    @property
    def netloc(self) -> str:
        return urllib.parse.urlsplit(self.url).netloc

    def authorization(self, renew: bool = False) -> Optional[str]:
        """The ``Authorization`` header value for Label Studio (None without a key)."""
        key = self.api_key
        if not key:
            return None
        if not _is_jwt(key):
            return f"Token {key}"
        with self._lock:
            if renew or self._access is None or time.monotonic() - self._access[1] > ACCESS_TOKEN_SECONDS:
                self._access = (self._refresh(key), time.monotonic())
            return f"Bearer {self._access[0]}"

    def _refresh(self, key: str) -> str:
        body = json.dumps({"refresh": key}).encode()
        request = urllib.request.Request(f"{self.url}/api/token/refresh/", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - Label Studio's URL
                return str(json.loads(response.read())["access"])
        except (urllib.error.URLError, KeyError, ValueError) as exc:
            raise ImageError(f"Label Studio at {self.url} did not accept the personal access token "
                             f"({_reason(exc)}); check --label-studio-api-key") from None


def _is_jwt(key: str) -> bool:
    return key.startswith("eyJ") and key.count(".") == 2


def _reason(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc)


def _inside(root: Path, relative: str) -> Path:
    """``root / relative`` when it stays inside ``root`` (no ``..`` or absolute escapes)."""
    root = root.resolve()
    path = (root / relative.lstrip("/")).resolve()
    if not path.is_relative_to(root):
        raise ImageError(f"the image path {relative!r} leaves {root}")
    return path


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but drop the Authorization header when the host changes."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


class ImageResolver:
    """Reads task images (see the module docstring).

    Args:
        document_root: Label Studio's ``LOCAL_FILES_DOCUMENT_ROOT`` (local files storage).
        media_root: Label Studio's media folder (``<data dir>/media``), for uploaded files.
        connection: Label Studio's address and key; when None, the one from ``/setup`` is used.
        timeout_s: download timeout.
    """

    def __init__(self, document_root: Optional[Path] = None, media_root: Optional[Path] = None,
                 connection: Optional[LabelStudioConnection] = None, timeout_s: float = 30.0) -> None:
        self.document_root = Path(document_root).expanduser() if document_root else None
        self.media_root = Path(media_root).expanduser() if media_root else None
        self.connection = connection
        self.timeout_s = timeout_s
        self._from_setup: dict[str, LabelStudioConnection] = {}
        self._opener = urllib.request.build_opener(_SameHostRedirects())

    def connect(self, project: str, hostname: Optional[str], access_token: Optional[str]) -> None:
        """Remember the Label Studio address and token that ``/setup`` gave for ``project``."""
        if hostname and hostname.startswith(("http://", "https://")):
            self._from_setup[project] = LabelStudioConnection(hostname, access_token or None)

    def _label_studio(self, project: str) -> Optional[LabelStudioConnection]:
        if self.connection is not None:
            return self.connection
        return self._from_setup.get(project) or next(iter(self._from_setup.values()), None)

    def read(self, reference: str, project: str = "") -> np.ndarray:
        """The image ``reference`` points to, as H×W×3 uint8 RGB.

        Raises:
            ImageError: the image cannot be located, fetched or decoded (the message says why).
        """
        if not isinstance(reference, str) or not reference.strip():
            raise ImageError(f"the task's image value must be a URL or path string, got {reference!r}")
        connection = self._label_studio(project)
        parts = urllib.parse.urlsplit(reference)
        if parts.scheme in ("s3", "gs", "azure-blob"):
            raise ImageError(f"{reference}: cloud storage images are not supported by clicksam's backend; use "
                             "Label Studio's local files storage or uploads")
        on_label_studio = not parts.netloc or (connection is not None and parts.netloc == connection.netloc)
        local = self._local_file(parts, reference) if on_label_studio else None
        if local is not None:
            if local.is_file():
                return self._read_file(local, reference)
            if connection is None:
                raise ImageError(f"{reference}: no file {local}, and Label Studio's address is unknown so it cannot "
                                 "be downloaded; check --document-root / --media-dir")
        if parts.netloc and parts.scheme in ("http", "https"):
            url = reference
        elif parts.netloc or not parts.path.startswith(("/data/", "/upload/", "upload/")):
            raise ImageError(f"{reference!r} is not an http(s) URL, a local-files URL or an upload")
        elif connection is not None:
            url = connection.url + "/" + reference.lstrip("/")
        else:
            raise ImageError(f"{reference}: the backend does not know Label Studio's address; start it with "
                             "--label-studio-url (or --document-root / --media-dir to read the files directly)")
        use_key = connection is not None and urllib.parse.urlsplit(url).netloc == connection.netloc
        return self._download(url, reference, connection if use_key else None)

    def _local_file(self, parts: urllib.parse.SplitResult, reference: str) -> Optional[Path]:
        """Where a local-files or upload reference lies on this machine (None: unknown, download it)."""
        if parts.path.startswith("/data/local-files"):
            relative = urllib.parse.parse_qs(parts.query).get("d", [""])[0]
            if not relative:
                raise ImageError(f"{reference}: a local-files URL needs ?d=<path under the document root>")
            return _inside(self.document_root, relative) if self.document_root is not None else None
        if parts.path.lstrip("/").startswith(("data/upload/", "upload/")) and self.media_root is not None:
            return _inside(self.media_root, parts.path.lstrip("/").removeprefix("data/"))
        return None

    def _read_file(self, path: Path, reference: str, shown: Optional[str] = None) -> np.ndarray:
        """``read_image(path)``; its error names ``shown`` (the URL of a download) instead of ``path``."""
        from clicksam.images import read_image

        try:
            return read_image(path)
        except (ValueError, OSError) as exc:
            message = str(exc).replace(str(path), shown) if shown else str(exc)
            raise ImageError(f"{reference}: {message}") from None

    def _download(self, url: str, reference: str, connection: Optional[LabelStudioConnection]) -> np.ndarray:
        for attempt in range(2):
            headers = {"User-Agent": "clicksam-label-studio"}
            auth = connection.authorization(renew=attempt > 0) if connection is not None else None
            if auth:
                headers["Authorization"] = auth
            try:
                with self._opener.open(urllib.request.Request(url, headers=headers), timeout=self.timeout_s) as response:
                    data = response.read(MAX_DOWNLOAD_BYTES + 1)
                break
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and auth and auth.startswith("Bearer") and attempt == 0:
                    continue  # the access token expired: renew it once
                hint = (" (give the backend Label Studio's API key: --label-studio-api-key or LABEL_STUDIO_API_KEY)"
                        if exc.code in (401, 403) else "")
                raise ImageError(f"{reference}: downloading {url} failed: {_reason(exc)}{hint}") from None
            except (urllib.error.URLError, OSError) as exc:
                raise ImageError(f"{reference}: downloading {url} failed: {_reason(exc)}") from None
        if len(data) > MAX_DOWNLOAD_BYTES:
            raise ImageError(f"{reference}: the image is larger than {MAX_DOWNLOAD_BYTES // 2**20} MiB")
        name = PurePosixPath(urllib.parse.urlsplit(url).path).name or "image"
        with tempfile.TemporaryDirectory(prefix="clicksam-ls-") as folder:
            path = Path(folder, name[-100:])
            path.write_bytes(data)
            return self._read_file(path, reference, shown=url)


def default_document_root() -> Optional[Path]:
    """Label Studio's local-files document root from its environment variables, if set."""
    for name in ("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", "LOCAL_FILES_DOCUMENT_ROOT"):
        if os.environ.get(name):
            return Path(os.environ[name])
    return None
