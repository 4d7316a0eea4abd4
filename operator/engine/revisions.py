"""Which revisions a spec describes, and how each is named. Pure.

A revision is a hash of the model and the pod template. A spec describes one: the
revision it rolls out. With a named fallback model (spec.fallback.model) it describes
a second, built from the same pod template with the fallback's model.
"""

from __future__ import annotations

import hashlib
import json

from ..spec import Spec


def revision_of(spec: Spec) -> str:
    """The revision of the serving pods: a hash of the model and the pod template.
    Replicas, routing and steps are left out: changing them starts no new rollout.

    The identity hashed is frozen (its keys are the first release's): a different one
    would rename every running revision, and an operator upgrade would roll out them all."""
    model, server = spec.model, spec.server
    identity = {
        "model": {"uri": model.uri, "version": model.version, "sha256": model.sha256, "name": model.name},
        "server": {"image": server.image, "resources": server.resources,
                   "env": [env.model_dump(by_alias=True, exclude_none=True) for env in server.env],
                   "batching": {"max_batch_size": server.batching.max_batch_size,
                                "max_queue_delay_us": server.batching.max_queue_delay_microseconds}},
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]


def fallback_spec(spec: Spec) -> Spec | None:
    """The spec of the named fallback model's revision: the same server, its model; None
    without spec.fallback.model."""
    named = spec.fallback.model if spec.fallback is not None else None
    if named is None:
        return None
    model = spec.model.model_copy(update={"uri": named.uri, "version": named.version, "sha256": named.sha256})
    return spec.model_copy(update={"model": model})


def buildable(spec: Spec) -> dict[str, Spec]:
    """The revisions this spec can build, each with the spec it is built from: the one it
    rolls out, and the named fallback's. Any other revision can be scaled, not rebuilt."""
    built = {revision_of(spec): spec}
    fallback = fallback_spec(spec)
    if fallback is not None:
        built.setdefault(revision_of(fallback), fallback)
    return built
