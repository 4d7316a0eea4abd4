"""Which of two copies of an object is the later one, by resourceVersion. Pure.

resourceVersions are opaque to clients in principle; every API server in use (etcd's
revisions, the harness's counter) gives increasing integers, and anything else is taken as
not comparable: neither copy is later.
"""

from __future__ import annotations


def version_of(obj: dict) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def newer(have: dict, other: dict) -> bool:
    """True when ``have`` is a later version than ``other``."""
    mine, theirs = version_of(have), version_of(other)
    return mine.isdigit() and theirs.isdigit() and int(mine) > int(theirs)


def latest(*copies: dict | None) -> dict | None:
    """The latest of the copies given (None ones left out); the first of equal ones."""
    found = None
    for copy in copies:
        if copy is not None and (found is None or newer(copy, found)):
            found = copy
    return found
