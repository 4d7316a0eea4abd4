"""Checks of single values that say more than the CRD's pattern can. Pure.

Each is the Python side of a field whose CRD side is a pattern or a CEL rule (v1alpha1.py
declares both next to each other); the message says what to fix.
"""

from __future__ import annotations

import re

from modelrollout.serving.server.download_policy import blocked_host, host_of

from .objects import Rule

MODEL_SCHEMES = ("http://", "https://", "file://", "pvc://", "/")
SHA256_PATTERN = "^[0-9a-fA-F]{64}$"
MODEL_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]*$"
PLACEHOLDERS = ("model", "namespace", "revision", "stableRevision", "interval")  # in query templates
# Braces are PromQL's label matchers (not nested) or a placeholder written exactly: an unknown
# {{...}} would reach Prometheus unreplaced.
_PLACEHOLDER = r"\{\{(" + "|".join(PLACEHOLDERS) + r")\}\}"
QUERY_PATTERN = rf"^([^{{}}]|{_PLACEHOLDER}|\{{([^{{}}]|{_PLACEHOLDER})*\}})*$"
# The CRD's side of "no link-local or cloud-metadata address": the API server sees the URI
# as written; the Python side (not_link_local) also reads decimal, hex and octal hosts.
LINK_LOCAL_CEL = (r"!self.matches(r'^(?i)[a-z][a-z0-9+.-]*://([^/?#@]*@)?(169\.254\.[0-9]+\.[0-9]+|\[(fe[89ab]"
                  r"[0-9a-f]:[^\]]*|fd00:ec2::254|::ffff:169\.254\.[0-9.]+)\]|100\.100\.100\.200|metadata\.google"
                  r"\.internal\.?|metadata\.goog\.?)(:[0-9]*)?([/?#]|$)')")


def link_local_rule(message: str) -> Rule:
    return Rule(LINK_LOCAL_CEL, message)


def model_uri(uri: str) -> str:
    if not uri.startswith(MODEL_SCHEMES):
        raise ValueError(f"{uri!r} must start with http://, https://, file://, pvc:// or /")
    not_link_local(uri, "model")
    return uri


def prometheus_address(address: str) -> str:
    if not re.match(r"^https?://", address):
        raise ValueError("must be an http(s):// URL")
    not_link_local(address, "Prometheus")
    return address


def not_link_local(uri: str, what: str) -> None:
    """A URI whose host is a link-local or cloud-metadata address: fetching from there hands
    the node's cloud credentials to whoever wrote the spec (SSRF)."""
    try:
        host = host_of(uri) if "://" in uri else ""
    except ValueError:
        raise ValueError(f"{what} URI cannot be parsed") from None
    reason = blocked_host(host) if host else None
    if reason is not None:
        raise ValueError(f"{what} URI points at {reason}: refused")


def sha256(value: str) -> str:
    if not re.fullmatch(SHA256_PATTERN, value):
        raise ValueError("must be 64 hexadecimal characters")
    return value.lower()


def model_name(name: str) -> str:
    if not re.fullmatch(MODEL_NAME_PATTERN, name) or len(name) > 63:
        raise ValueError(f"{name!r} must be 1 to 63 letters, digits, '_', '.' or '-', starting with a letter "
                         "or digit (it goes in URLs and queries)")
    return name


def query_template(query: str) -> str:
    """Braces in a query template: PromQL's own (label matchers, single) or one of the
    PLACEHOLDERS written exactly (``{{model}}``). Anything else between double braces would
    reach Prometheus unreplaced, or be read as a placeholder that is not one."""
    known = ", ".join("{{" + p + "}}" for p in PLACEHOLDERS)
    i, depth = 0, 0
    while i < len(query):
        if query.startswith("{{", i):
            end = query.find("}}", i + 2)
            name = query[i + 2:end] if end >= 0 else ""
            if name not in PLACEHOLDERS:
                shown = query[i:end + 2] if end >= 0 and end - i < 40 else query[i:i + 20] + "..."
                raise ValueError(f"unknown placeholder {shown!r}; templates may use {known}")
            i = end + 2
            continue
        char = query[i]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced '}}' at character {i}")
        i += 1
    if depth:
        raise ValueError("unbalanced '{': a label matcher is not closed")
    return query
