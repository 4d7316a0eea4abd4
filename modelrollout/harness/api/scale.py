"""The scale subresource of a custom resource, as the API server serves it: an
``autoscaling/v1`` Scale read from the object through the CRD's paths, and a Scale written
back as the object's replicas. Pure.

    paths = ScalePaths.of(version["subresources"]["scale"])
    scale = scale_of(obj, paths)                  # what GET .../scale answers
    obj = with_replicas(obj, paths, replicas_of(wanted))   # what PATCH/PUT .../scale stores

The paths are the simple dotted JSONPath the API server accepts for them (``.spec.replicas``);
an absent status reads as 0 replicas and an empty selector, as the API server answers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass


class ScaleError(ValueError):
    """A Scale the API server refuses (422 Invalid)."""


@dataclass(frozen=True)
class ScalePaths:
    spec_replicas: tuple[str, ...]
    status_replicas: tuple[str, ...]
    label_selector: tuple[str, ...] | None

    @classmethod
    def of(cls, scale: dict) -> ScalePaths:
        """From a CRD version's ``subresources.scale``."""
        selector = scale.get("labelSelectorPath")
        return cls(_keys(scale["specReplicasPath"]), _keys(scale["statusReplicasPath"]),
                   _keys(selector) if selector else None)


def scale_of(obj: dict, paths: ScalePaths) -> dict:
    meta = obj.get("metadata") or {}
    status = {"replicas": _get(obj, paths.status_replicas) or 0}
    selector = _get(obj, paths.label_selector) if paths.label_selector else None
    if selector:
        status["selector"] = selector
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {key: meta[key] for key in ("name", "namespace", "uid", "resourceVersion",
                                                 "creationTimestamp") if key in meta},
        "spec": {"replicas": _get(obj, paths.spec_replicas) or 0},
        "status": status,
    }


def replicas_of(scale: object) -> int:
    """``spec.replicas`` of a Scale a client sent."""
    spec = scale.get("spec") if isinstance(scale, dict) else None
    replicas = spec.get("replicas", 0) if isinstance(spec, dict) else 0
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        raise ScaleError(f"spec.replicas: Invalid value: {replicas!r}: must be an integer")
    if replicas < 0:
        raise ScaleError(f"spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0")
    return replicas


def with_replicas(obj: dict, paths: ScalePaths, replicas: int) -> dict:
    """A copy of ``obj`` with its spec's replicas set."""
    changed = copy.deepcopy(obj)
    node = changed
    for key in paths.spec_replicas[:-1]:
        node = node.setdefault(key, {})
    node[paths.spec_replicas[-1]] = replicas
    return changed


def _keys(path: str) -> tuple[str, ...]:
    keys = tuple(path.strip().removeprefix(".").split("."))
    if not path.startswith(".") or not all(keys):
        raise ScaleError(f"a scale path must be a dotted path such as .spec.replicas, not {path!r}")
    return keys


def _get(obj: dict, keys: tuple[str, ...]) -> object:
    node: object = obj
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node
