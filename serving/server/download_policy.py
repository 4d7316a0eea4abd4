"""What a model download may do: which URIs and addresses, how big, how long; and how a
URI shows in logs and errors. Pure: no I/O (loading.py resolves names, connects and
streams, and asks here about every URL and address on the way).

- https always; http only to a loopback host (127.0.0.0/8, ::1, ``localhost``: the local
  harness, the demo and the tests) unless the operator of the server allows it
  (``--allow-http-models``): a model fetched in the clear can be swapped on the way, and
  only a ``--sha256`` would notice.
- Never a link-local or cloud-metadata address (169.254.0.0/16, fe80::/10, AWS's
  fd00:ec2::254, Alibaba's 100.100.100.200, ``metadata.google.internal``), whatever the
  flags: a model URI is written by whoever may create a ModelDeployment, and a server
  that fetched from there would hand the node's cloud credentials to it (SSRF).
- A URI is shown without its user information and query string (signed URLs and
  tokens travel there): ``https://***@host/path?***``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from modelrollout.settings_fields import check_bounds, setting


@dataclass(frozen=True)
class DownloadPolicy:
    """Embedded in the server's settings (its flags are `modelrollout serve`'s)."""

    read_timeout_seconds: float = setting(
        30.0, flag="--download-timeout-seconds", above=0,
        help="Model download: longest wait for the next bytes (read timeout).")
    connect_timeout_seconds: float = setting(
        10.0, flag="--download-connect-timeout-seconds", above=0,
        help="Model download: longest wait for a connection.")
    deadline_seconds: float = setting(
        1800.0, flag="--download-deadline-seconds", above=0,
        help="Model download: longest one attempt may take, start to end.")
    retries: int = setting(3, flag="--download-retries", at_least=0)
    max_bytes: int = setting(
        2 * 1024**3, flag="--max-model-bytes", at_least=1,  # protobuf's limit on one .onnx file
        help="Largest model download; larger ones are refused (no retry).")
    allow_http: bool = setting(
        False, flag="--allow-http-models", off_flag="--https-models-only",
        help="Download models over plain http from any host (by default http only from loopback: "
        "127.0.0.0/8, ::1, localhost).")
    backoff_seconds: float = 1.0

    def __post_init__(self) -> None:
        check_bounds(self)


_BLOCKED_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "169.254.0.0/16",  # IPv4 link-local: every big cloud's metadata service, 169.254.169.254
    "fe80::/10",  # IPv6 link-local
    "fd00:ec2::254/128",  # AWS's metadata service over IPv6
    "100.100.100.200/32",  # Alibaba Cloud's metadata service
))
_BLOCKED_HOSTS = frozenset({"metadata.google.internal", "metadata.goog"})
_LOOPBACK_NAMES = frozenset({"localhost"})


class RefusedURI(Exception):
    """A model URI (or an address it leads to) the server will not fetch from."""


def blocked_address(address: str) -> str | None:
    """Why the server will not connect to ``address`` (an IP), or None."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # without an IPv6 zone
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for network in _BLOCKED_NETWORKS:
        if ip in network:
            return f"{ip} is a link-local or cloud-metadata address ({network})"
    return None


def blocked_host(host: str) -> str | None:
    """Why a URI naming ``host`` may never be fetched, judged on the name alone (no DNS):
    a cloud-metadata name, or a link-local or metadata address, also when written the
    old ways an IPv4 address can be (``2852039166``, ``0xa9fea9fe``, ``0251.0376.0251.0376``),
    which resolvers still accept. The operator refuses such a ModelDeployment with it; the
    server also checks every address a name resolves to."""
    host = host.lower().rstrip(".")
    if host in _BLOCKED_HOSTS:
        return f"a cloud-metadata host ({host})"
    return blocked_address(host) or blocked_address(_legacy_ipv4(host) or "")


def _legacy_ipv4(host: str) -> str | None:
    """An IPv4 address written as inet_aton reads one (1 to 4 parts, each decimal, 0x-hex or
    0-octal, the last filling the remaining bytes), as a dotted quad; None when it is not one."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = []
    for part in parts:
        try:
            if part.lower().startswith("0x"):
                numbers.append(int(part[2:], 16))
            elif len(part) > 1 and part.startswith("0"):
                numbers.append(int(part[1:], 8))
            else:
                numbers.append(int(part, 10))
        except ValueError:
            return None
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (4 - len(leading)):
        return None
    value = last
    for i, n in enumerate(reversed(leading)):
        value += n << (8 * (4 - len(leading) + i))
    return str(ipaddress.IPv4Address(value))


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_of(uri: str) -> str:
    """The URI's host, lower-case, without brackets or a trailing dot."""
    return (urlsplit(uri).hostname or "").rstrip(".")


def check(uri: str, allow_http: bool) -> None:
    """Raise RefusedURI unless the server may fetch ``uri`` (an http(s) URI), before any
    name is resolved; every address it resolves to goes through ``blocked_address`` too."""
    parts = urlsplit(uri)
    host = host_of(uri)
    if not host:
        raise RefusedURI(f"model URI {redact(uri)} has no host")
    if parts.scheme == "http":
        if not (allow_http or is_loopback(host)):
            raise RefusedURI(f"model URI {redact(uri)} is plain http to a host that is not loopback: "
                             "use https, or allow it with --allow-http-models")
    elif parts.scheme != "https":
        raise RefusedURI(f"model URI {redact(uri)}: only https (and http) can be downloaded")
    reason = blocked_host(host)
    if reason is not None:
        raise RefusedURI(f"model URI {redact(uri)} points at {reason}")


def redact(uri: str) -> str:
    """``uri`` with its user information and query string masked."""
    try:
        parts = urlsplit(uri)
        netloc = parts.netloc
    except ValueError:  # not even a URI (an unbalanced '[', say): show nothing of it
        return "<unparsable URI>"
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    shown = f"{parts.scheme}://{netloc}{parts.path}" if parts.scheme else parts.path
    if parts.query:
        shown += "?***"
    return shown


def scrub(text: str, uri: str) -> str:
    """``text`` (an error message, say from httpx) without any secret of ``uri`` in it."""
    try:
        parts = urlsplit(uri)
        secrets = [uri, parts.query, parts.password, parts.username]
        if "@" in parts.netloc:
            secrets.append(parts.netloc.rsplit("@", 1)[0])
    except ValueError:
        secrets = [uri]
    for secret in sorted((s for s in secrets if s and len(s) >= 3), key=len, reverse=True):
        text = text.replace(secret, "***" if secret != uri else redact(uri))
    return text
