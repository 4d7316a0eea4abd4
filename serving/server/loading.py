"""Fetch a model (path, file:// or http(s)://), verify its sha256, resolve its folder.

Downloads follow download_policy.py: which URIs and addresses, size cap, timeouts,
retries, and how a URI shows in logs.

A model is one ``.onnx`` file, or a folder holding ``model.onnx`` plus optional
``metadata.json``/``metadata.yaml`` (merged into the model metadata's parameters) and
``labels.txt`` (one class label per line).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx
import orjson
import yaml

from .download_policy import (
    DownloadPolicy,
    RefusedURI,
    blocked_address,
    check,
    host_of,
    is_ip,
    redact,
    scrub,
)

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


def fetch(uri: str, cache_dir: Path, policy: DownloadPolicy) -> Path:
    """A local path for ``uri``; http(s) URIs are streamed into ``cache_dir``."""
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        return _download(uri, cache_dir, policy)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
    elif parsed.scheme == "":
        path = Path(uri)
    else:
        raise LoadError("download", f"unsupported model URI scheme {parsed.scheme!r} in {redact(uri)}")
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


class _Retry(Exception):
    """This attempt failed in a way another attempt may not (a 5xx, a timeout)."""


def _download(uri: str, cache_dir: Path, policy: DownloadPolicy) -> Path:
    try:
        check(uri, policy.allow_http)
    except RefusedURI as exc:
        raise LoadError("download", str(exc)) from None
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / _cache_name(uri)
    guard = _Guard(policy.allow_http)
    timeout = httpx.Timeout(policy.read_timeout_seconds, connect=policy.connect_timeout_seconds)
    last_error = ""
    for attempt in range(1, policy.retries + 2):
        if _stopping.is_set():
            last_error = "the server is shutting down"
            break
        try:
            hooks = {"request": [guard.request], "response": [guard.response]}
            with httpx.Client(timeout=timeout, follow_redirects=True, max_redirects=5,
                              event_hooks=hooks) as client:
                _attempt(client, uri, target, policy)
            log.info("model downloaded", extra={"uri": redact(uri), "bytes": target.stat().st_size})
            return target
        except RefusedURI as exc:  # a redirect, or a name, leading where we do not go
            raise LoadError("download", f"could not download {redact(uri)}: {exc}") from None
        except _Retry as exc:
            last_error = str(exc)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            last_error = scrub(f"{type(exc).__name__}: {exc}", uri)
            if isinstance(exc, httpx.TooManyRedirects | httpx.InvalidURL | httpx.UnsupportedProtocol):
                break  # the same again on every attempt
        log.warning(
            "model download failed",
            extra={"uri": redact(uri), "attempt": attempt, "error": last_error},
        )
        if attempt <= policy.retries:
            _stopping.wait(policy.backoff_seconds * 2 ** (attempt - 1))
    raise LoadError("download", f"could not download {redact(uri)}: {last_error}")


def _attempt(client: httpx.Client, uri: str, target: Path, policy: DownloadPolicy) -> None:
    deadline = time.monotonic() + policy.deadline_seconds
    with client.stream("GET", uri) as response:
        if response.status_code >= 400:
            message = f"HTTP {response.status_code}"
            if response.status_code >= 500 or response.status_code == 429:
                raise _Retry(message)
            # Retrying a 404 or a 403 changes nothing.
            raise LoadError("download", f"could not download {redact(uri)}: {message}")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > policy.max_bytes:
            raise LoadError("download", f"model at {redact(uri)} is {declared} bytes, over the limit of "
                                        f"{policy.max_bytes} (--max-model-bytes)")
        _save(response, target, uri, policy, deadline)


class _Guard:
    """httpx event hooks run for every request and response, redirects included: each URL
    goes through download_policy.check, each name's addresses and each connected peer
    through its blocked_address (the peer check also catches a name that changed its
    answer between our lookup and httpx's)."""

    def __init__(self, allow_http: bool) -> None:
        self._allow_http = allow_http

    def request(self, request: httpx.Request) -> None:
        url = str(request.url)
        check(url, self._allow_http)
        host = host_of(url)
        if not is_ip(host):  # a name: where it leads now (an IP was checked above)
            try:
                infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
            except OSError:
                return  # httpx's own lookup fails the same way, with its own error
            for info in infos:
                reason = blocked_address(str(info[4][0]))
                if reason is not None:
                    raise RefusedURI(f"{redact(url)}: {host} resolves to {reason}")

    def response(self, response: httpx.Response) -> None:
        stream = response.extensions.get("network_stream")
        peer = stream.get_extra_info("server_addr") if stream is not None else None
        if peer:
            reason = blocked_address(str(peer[0]))
            if reason is not None:
                raise RefusedURI(f"{redact(str(response.request.url))}: connected to {reason}")


def _cache_name(uri: str) -> str:
    """One cache file per model URI. Replicas on one machine share the cache folder, and
    two models that are both called model.onnx must not overwrite each other. The full URI
    is hashed (never written out) because it may carry a signature in its query string."""
    name = Path(urlparse(uri).path).name or "model.onnx"
    return f"{hashlib.sha256(uri.encode()).hexdigest()[:16]}-{name}"


def _save(response: httpx.Response, target: Path, uri: str, policy: DownloadPolicy, deadline: float) -> None:
    """Stream into a partial file of this download's own, then rename it over ``target``:
    overlapping downloads never write into one file, and readers only see complete files."""
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".part")
    size = 0
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in response.iter_bytes(_CHUNK):
                if _stopping.is_set():
                    raise LoadError("download", "the server is shutting down")
                size += len(chunk)
                if size > policy.max_bytes:
                    raise LoadError("download", f"model at {redact(uri)} is over the limit of "
                                                f"{policy.max_bytes} bytes (--max-model-bytes)")
                if time.monotonic() > deadline:
                    raise LoadError("download", f"model at {redact(uri)} not downloaded within "
                                                f"{policy.deadline_seconds:g} s "
                                                "(--download-deadline-seconds)")
                f.write(chunk)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
