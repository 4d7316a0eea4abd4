"""Fetch a model (path, file:// or http(s)://), verify its sha256, resolve its folder.

A model is one ``.onnx`` file, or a folder holding ``model.onnx`` plus optional
``metadata.json``/``metadata.yaml`` (merged into the model metadata's parameters) and
``labels.txt`` (one class label per line).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx
import orjson
import yaml

log = logging.getLogger("modelrollout.serve")

_CHUNK = 1 << 20

# Set once the process is shutting down. Downloads run in a worker thread that asyncio
# cannot cancel, and the process only exits once that thread is done: without this flag
# a SIGTERM waits for every retry, backoff and timeout of a failing download.
_stopping = threading.Event()


def stop_downloads() -> None:
    """Make a download in progress, or waiting to retry, give up at once."""
    _stopping.set()


class LoadError(Exception):
    """The model could not be made ready; ``reason`` is the failures-metric label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class ModelFiles:
    onnx_path: Path
    sha256: str  # digest of the .onnx file
    metadata: dict = field(default_factory=dict)
    labels: list[str] | None = None


def fetch(
    uri: str,
    cache_dir: Path,
    *,
    timeout_seconds: float = 30.0,
    retries: int = 3,
    backoff_seconds: float = 1.0,
) -> Path:
    """A local path for ``uri``; http(s) URIs are streamed into ``cache_dir``."""
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        return _download(uri, cache_dir, timeout_seconds, retries, backoff_seconds)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
    elif parsed.scheme == "":
        path = Path(uri)
    else:
        raise LoadError("download", f"unsupported model URI scheme {parsed.scheme!r} in {uri!r}")
    if not path.exists():
        raise LoadError("download", f"model path {str(path)!r} does not exist")
    return path


def resolve(path: Path, expected_sha256: str | None) -> ModelFiles:
    """Find the .onnx file and metadata at ``path`` and check the digest before anything loads."""
    if path.is_dir():
        onnx_path = path / "model.onnx"
        if not onnx_path.is_file():
            raise LoadError("load", f"model folder {str(path)!r} has no model.onnx")
    else:
        onnx_path = path
    digest = sha256_of(onnx_path)
    if expected_sha256 and digest != expected_sha256.lower():
        raise LoadError(
            "sha256_mismatch",
            f"sha256 of {str(onnx_path)!r} is {digest}, expected {expected_sha256.lower()}: "
            "refusing to load it",
        )
    files = ModelFiles(onnx_path=onnx_path, sha256=digest)
    if path.is_dir():
        files.metadata = _read_metadata(path)
        labels_path = path / "labels.txt"
        if labels_path.is_file():
            lines = labels_path.read_text().splitlines()
            files.labels = [line.strip() for line in lines if line.strip()]
    return files


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _read_metadata(folder: Path) -> dict:
    for name, parse in (("metadata.json", orjson.loads), ("metadata.yaml", yaml.safe_load)):
        path = folder / name
        if path.is_file():
            try:
                doc = parse(path.read_bytes())
            except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
                raise LoadError("load", f"{str(path)!r} is not valid: {exc}") from None
            if not isinstance(doc, dict):
                raise LoadError("load", f"{str(path)!r} must hold a mapping")
            return doc
    return {}


def _download(uri: str, cache_dir: Path, timeout: float, retries: int, backoff: float) -> Path:
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / _cache_name(uri)
    last_error = ""
    for attempt in range(1, retries + 2):
        if _stopping.is_set():
            last_error = "the server is shutting down"
            break
        try:
            with httpx.stream("GET", uri, timeout=timeout, follow_redirects=True) as response:
                if response.status_code >= 400:
                    last_error = f"HTTP {response.status_code}"
                    if response.status_code < 500 and response.status_code != 429:
                        break  # retrying a 404 or a 403 changes nothing
                else:
                    _save(response, target)
                    log.info(
                        "model downloaded",
                        extra={"uri": _redact(uri), "bytes": target.stat().st_size},
                    )
                    return target
        except httpx.HTTPError as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        log.warning(
            "model download failed",
            extra={"uri": _redact(uri), "attempt": attempt, "error": last_error},
        )
        if attempt <= retries:
            _stopping.wait(backoff * 2 ** (attempt - 1))
    raise LoadError("download", f"could not download {_redact(uri)}: {last_error}")


def _cache_name(uri: str) -> str:
    """One cache file per model URI. Replicas on one machine share the cache folder, and
    two models that are both called model.onnx must not overwrite each other. The full URI
    is hashed (never written out) because it may carry a signature in its query string."""
    name = Path(urlparse(uri).path).name or "model.onnx"
    return f"{hashlib.sha256(uri.encode()).hexdigest()[:16]}-{name}"


def _save(response: httpx.Response, target: Path) -> None:
    """Stream into a partial file of this download's own, then rename it over ``target``:
    overlapping downloads never write into one file, and readers only see complete files."""
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in response.iter_bytes(_CHUNK):
                if _stopping.is_set():
                    raise LoadError("download", "the server is shutting down")
                f.write(chunk)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def _redact(uri: str) -> str:
    """The URI without credentials or query string (signed URLs carry secrets there)."""
    parsed = urlparse(uri)
    host = parsed.hostname or ""
    if parsed.port:
        host = f"{host}:{parsed.port}"
    return f"{parsed.scheme}://{host}{parsed.path}"
