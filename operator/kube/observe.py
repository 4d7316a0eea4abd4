"""Gather one Observations value for a ModelDeployment: the cluster, the candidate, Prometheus.

Read once per reconcile, before the engine decides; nothing here decides anything. Every
read that fails leaves its observation at the safe value (not ready, no smoke result,
an Error measurement), so the engine never moves on from what it could not see.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import httpx
from modelrollout.serving.contract.endpoint_slices import PORT_NAME, SERVICE_NAME_LABEL, endpoints_by_service
from modelrollout.serving.contract.golden import (
    GoldenScore,
    InvalidGoldenSet,
    parse_golden_set,
    request_of,
    score,
)
from modelrollout.serving.contract.predictions import InvalidPrediction, prediction_of
from modelrollout.serving.contract.routes import Endpoint

from ..analysis.providers.prometheus import PrometheusProvider
from ..engine import (
    COMMANDS,
    GoldenResult,
    Observations,
    candidate_replicas,
    comparisons_due,
    comparisons_since,
    due_metrics,
    fallback_of,
    routing_measured,
)
from ..routing import Target, revision_name
from ..smoke import check_answer, smoke_request
from ..spec import Spec
from ..status import RolloutStatus, format_time, parse_time
from .cache import Reads
from .manifests import MODEL_DEPLOYMENT_LABEL, REVISION_LABEL

log = logging.getLogger("modelrollout.operator")

CRASH_LOOP_RESTARTS = 3  # restarts of a candidate container that count as a crash loop
SMOKE_TIMEOUT_SECONDS = 10.0
UNREADY_PODS_ASKED = 3  # unready candidate pods asked why, per reconcile
UNREADY_TIMEOUT_SECONDS = 2.0
GOLDEN_CONCURRENCY = 4  # golden-set requests in flight per revision


def command_of(status: RolloutStatus) -> tuple[str | None, str | None]:
    """The manual command waiting in ``status.command`` ({action, id}), if not carried out yet.
    The kubectl plugin writes it to the status subresource, so spec (and GitOps) never change."""
    command = status.command
    if command is None or command.action not in COMMANDS or command.id == status.handled_command:
        return None, None
    return command.action, command.id


def command_by(status: RolloutStatus) -> str | None:
    """Who asked for the waiting command (the plugin's requestedBy), bounded for history."""
    who = status.command.requested_by if status.command else None
    return who[:63] if who else None


async def observe(reads: Reads, http: httpx.AsyncClient, target: Target, spec: Spec, status: RolloutStatus,
                  body: dict, now: datetime) -> Observations:
    namespace = target.namespace
    stable, candidate = status.stable_revision, status.candidate_revision
    # No stable revision yet: the first one is about to be made, and nothing of it is ready.
    stable_ready_replicas = 0
    if stable is not None:
        stable_ready_replicas = await _ready_replicas(reads, namespace, target.name, stable)
    candidate_ready = crash_looping = 0
    smoke = problem = golden = None
    if candidate is not None:
        candidate_ready = await _ready_replicas(reads, namespace, target.name, candidate)
        crash_looping = await _crash_looping(reads, target, candidate)
        if not status.gate_passed and candidate_ready >= candidate_replicas(spec, status):
            smoke = await _smoke_test(reads, http, target, spec, candidate)
            if smoke is True and spec.golden_set is not None:
                golden = await _golden_set(reads, http, target, candidate, stable)
        elif not status.gate_passed:
            problem = await _unready_answers(reads, http, target, candidate)
    measurements, comparisons = (), None
    due = due_metrics(spec, status, now)
    provider = PrometheusProvider(spec.analysis.prometheus.address or "", http)
    fallback = fallback_of(spec, status)
    fallback_revision = fallback[0] if fallback else None
    if due and stable is not None:
        # A rollout measures its candidate against stable; after it, the guard measures stable
        # (against its profile, for prediction-shift).
        measured, other = (candidate, stable) if candidate is not None else (stable, fallback_revision)
        routing = spec.traffic_routing.kind if candidate is not None else routing_measured(spec, status)
        at = format_time(now)
        measurements = tuple(await asyncio.gather(*(
            provider.measure(metric, routing, target.model, namespace, measured,
                             metric.interval_seconds or spec.analysis.interval_seconds, at, other or "",
                             reference=candidate is None)
            for metric in (spec.analysis.metric(name) for name in due)
        )))
    fallback_ready, fallback_problem = 0, None
    if fallback_revision is not None:
        fallback_ready = await _ready_replicas(reads, namespace, target.name, fallback_revision)
        if fallback_ready < 1:
            fallback_problem = await _unready_answers(reads, http, target, fallback_revision)
    if comparisons_due(spec, status, now) and spec.analysis.prometheus.address:
        since = (now - parse_time(comparisons_since(status))).total_seconds()
        comparisons = await provider.count_comparisons(spec.traffic_routing.kind, target.model, namespace,
                                                       candidate,
                                                       since)
    command, _ = command_of(status)
    return Observations(
        generation=int((body.get("metadata") or {}).get("generation") or 0),
        stable_ready_replicas=stable_ready_replicas,
        candidate_ready_replicas=candidate_ready,
        candidate_crash_looping=bool(crash_looping),
        smoke_test=smoke,
        measurements=measurements,
        command=command,
        command_by=command_by(status) if command else None,
        shadow_comparisons=comparisons,
        candidate_problem=problem,
        golden_set=golden,
        fallback_revision=fallback_revision,
        fallback_ready_replicas=fallback_ready,
        fallback_problem=fallback_problem,
    )


async def _ready_replicas(reads: Reads, namespace: str, name: str, revision: str) -> int:
    deployment = await reads.get("Deployment", namespace, revision_name(name, revision))
    if deployment is None:
        return 0
    return int((deployment.get("status") or {}).get("readyReplicas") or 0)


async def _crash_looping(reads: Reads, target: Target, revision: str) -> bool:
    pods = await reads.list("Pod", target.namespace,
                            {MODEL_DEPLOYMENT_LABEL: target.name, REVISION_LABEL: revision})
    for pod in pods:
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") == "CrashLoopBackOff" or (
                int(container.get("restartCount") or 0) >= CRASH_LOOP_RESTARTS and not container.get("ready")
            ):
                return True
    return False


async def _unready_answers(reads: Reads, http: httpx.AsyncClient, target: Target,
                           revision: str) -> str | None:
    """What the revision's pods that are not ready say about it: the error of their
    readiness endpoint (the server names the cause: a download that failed, a sha256
    mismatch, a model onnxruntime cannot load). A kubelet keeps no probe's answer, so the
    operator asks the pods, as it does for the smoke inference. None when none answered."""
    service = revision_name(target.name, revision)
    slices = await reads.list("EndpointSlice", target.namespace,
                              {MODEL_DEPLOYMENT_LABEL: target.name, SERVICE_NAME_LABEL: service})
    told: list[str] = []
    for pod, address in _unready_pods(slices)[:UNREADY_PODS_ASKED]:
        try:
            answer = await http.get(f"http://{address}/v2/health/ready", timeout=UNREADY_TIMEOUT_SECONDS)
            error = answer.json().get("error") if answer.status_code != 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            continue  # not answering yet (starting, restarting): nothing to tell
        if isinstance(error, str) and error:
            text = f"pod {pod}: {error[:300]}"
            if text not in told:
                told.append(text)
    return "; ".join(told) or None


def _unready_pods(slices: list[dict]) -> list[tuple[str, str]]:
    """(pod name, host:port) of the endpoints that are not ready and not going away."""
    found = []
    for obj in slices:
        ports = obj.get("ports") or []
        port = next((p for p in ports if p.get("name") == PORT_NAME), ports[0] if ports else {}).get("port")
        for endpoint in obj.get("endpoints") or []:
            conditions = endpoint.get("conditions") or {}
            addresses = endpoint.get("addresses") or []
            settled = conditions.get("terminating") or conditions.get("ready") is not False
            if settled or not addresses or not port:
                continue
            host = addresses[0]
            pod = (endpoint.get("targetRef") or {}).get("name") or host
            found.append((pod, f"[{host}]:{port}" if ":" in host else f"{host}:{port}"))
    return sorted(found)


async def revision_endpoints(reads: Reads, target: Target, revision: str) -> tuple[Endpoint, ...]:
    """The endpoints of the revision's Service, from its EndpointSlices (which carry the
    Service's labels, the ModelDeployment's among them, as the EndpointSlice controller copies them)."""
    service = revision_name(target.name, revision)
    slices = await reads.list("EndpointSlice", target.namespace,
                              {MODEL_DEPLOYMENT_LABEL: target.name, SERVICE_NAME_LABEL: service})
    return endpoints_by_service(slices).get((target.namespace, service), ())


async def candidate_address(reads: Reads, target: Target, revision: str) -> str | None:
    """host:port of a ready endpoint of the revision's Service, from its EndpointSlices."""
    endpoints = await revision_endpoints(reads, target, revision)
    endpoint = next((e for e in endpoints if e.ready), None)
    if endpoint is None:
        return None
    return f"[{endpoint.host}]:{endpoint.port}" if ":" in endpoint.host else endpoint.address


async def _smoke_test(reads: Reads, http: httpx.AsyncClient, target: Target, spec: Spec,
                      revision: str) -> bool | str | None:
    """True when the candidate answered one inference correctly, else what went wrong;
    None when there is no ready endpoint to ask yet (the gate stays closed)."""
    address = await candidate_address(reads, target, revision)
    if address is None:
        return None
    base = f"http://{address}/v2/models/{target.model}"
    try:
        metadata_response = await http.get(base, timeout=SMOKE_TIMEOUT_SECONDS)
        if metadata_response.status_code != 200:
            return f"metadata request answered HTTP {metadata_response.status_code}"
        metadata = metadata_response.json()
        request = spec.smoke_test.request if spec.smoke_test else smoke_request(metadata)
        response = await http.post(f"{base}/infer", json=request, timeout=SMOKE_TIMEOUT_SECONDS)
        try:
            answer = response.json()
        except ValueError:
            answer = None
    except httpx.HTTPError as exc:
        log.info("smoke test of %s could not reach %s: %s", revision, address, type(exc).__name__)
        return None  # not an answer: ask again next reconcile (the deadline still runs)
    except ValueError as exc:
        return str(exc)
    problem = check_answer(metadata, response.status_code, answer)
    return True if problem is None else problem


async def _golden_set(reads: Reads, http: httpx.AsyncClient, target: Target, candidate: str,
                      stable: str | None) -> GoldenResult | str | None:
    """The candidate's golden set (GET .../golden, served from the model folder) replayed
    against the candidate and against stable; why it cannot be, or None when a revision
    cannot be reached right now (asked again next reconcile)."""
    address = await candidate_address(reads, target, candidate)
    if address is None:
        return None
    try:
        response = await http.get(f"http://{address}/v2/models/{target.model}/golden",
                                  timeout=SMOKE_TIMEOUT_SECONDS)
    except httpx.HTTPError:
        return None
    if response.status_code == 404:
        return ("the candidate's model has no golden.json beside model.onnx, which spec.goldenSet asks for "
                "(build one with `modelrollout profile --golden-set`)")
    try:
        golden = parse_golden_set(response.json())
    except (ValueError, InvalidGoldenSet) as exc:
        return f"golden.json cannot be read: {exc}"
    scores = []
    for revision in (candidate, stable):
        where = None if revision is None else await candidate_address(reads, target, revision)
        if revision is not None and where is None:
            return None  # stable has no ready endpoint this moment
        scores.append(None if where is None else await _replay(http, where, target.model, golden))
    if None in scores[:1] or (stable is not None and scores[1] is None):
        return None
    return GoldenResult(golden.prediction.kind, scores[0], scores[1])


async def _replay(http: httpx.AsyncClient, address: str, model: str, golden) -> GoldenScore | None:
    """Every example, a few at a time; an unusable answer counts as wrong, an unreachable
    revision makes the whole replay wait for the next reconcile (None)."""
    spec, gate = golden.prediction, asyncio.Semaphore(GOLDEN_CONCURRENCY)
    url = f"http://{address}/v2/models/{model}/infer"

    async def one(example) -> str | float | None:
        async with gate:
            answer = await http.post(url, json=request_of(example, spec), timeout=SMOKE_TIMEOUT_SECONDS)
        try:
            return prediction_of(answer.json(), spec) if answer.status_code == 200 else None
        except (ValueError, InvalidPrediction):
            return None

    try:
        predicted = await asyncio.gather(*(one(example) for example in golden.examples))
    except httpx.HTTPError as exc:
        log.info("golden-set replay could not reach %s: %s", address, type(exc).__name__)
        return None
    return score(spec, [example.expected for example in golden.examples], list(predicted))
