"""Which endpoints of a Service are there and ready, from its EndpointSlices. Pure.

Read by the gateway (the endpoints of each revision) and by the operator (a ready
candidate endpoint for the smoke inference), so both see a Service the same way:

- a slice belongs to the Service named by its ``kubernetes.io/service-name`` label;
- its port is the one named ``http`` (the operator names it so), else its first;
- an endpoint is ready unless ``conditions.ready`` is false (unset means ready, as in
  Kubernetes); a terminating endpoint that is not serving is left out.
"""

from __future__ import annotations

from collections.abc import Iterable

from .routes import Endpoint

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"  # who writes a slice (and may delete it)
PORT_NAME = "http"  # the Service port of a revision's pods


def endpoints_by_service(slices: Iterable[dict]) -> dict[tuple[str, str], tuple[Endpoint, ...]]:
    """(namespace, service) -> its endpoints, sorted, each once."""
    ready_by_address: dict[tuple[str, str], dict[tuple[str, int], bool]] = {}
    for obj in slices:
        metadata = _mapping(obj.get("metadata"))
        service = _mapping(metadata.get("labels")).get(SERVICE_NAME_LABEL)
        port = _slice_port(obj.get("ports"))
        if not service or port is None:
            continue
        found = ready_by_address.setdefault((metadata.get("namespace") or "", service), {})
        for endpoint in obj.get("endpoints") or []:
            addresses = _mapping(endpoint).get("addresses") or []
            if not addresses or not isinstance(addresses[0], str):
                continue
            conditions = _mapping(endpoint.get("conditions"))
            ready = conditions.get("ready") is not False
            serving = conditions.get("serving")
            if conditions.get("terminating") is True and not (ready if serving is None else serving):
                continue
            # Kubernetes treats the addresses of one endpoint as interchangeable and proxies
            # use the first; one pod in two slices (while they are rebalanced) counts once.
            key = (addresses[0], port)
            found[key] = found.get(key, False) or ready
    return {
        service: tuple(Endpoint(host, port, ready) for (host, port), ready in sorted(found.items()))
        for service, found in ready_by_address.items()
    }


def _slice_port(ports: object) -> int | None:
    if not isinstance(ports, list) or not ports:
        return None
    chosen = next((p for p in ports if _mapping(p).get("name") == PORT_NAME), ports[0])
    number = _mapping(chosen).get("port")
    return number if type(number) is int and 0 < number < 65536 else None  # noqa: E721 - not bool


def _mapping(value: object) -> dict:
    return value if isinstance(value, dict) else {}
