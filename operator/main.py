"""Run `modelrollout operator`: kopf with our handlers, metrics and liveness endpoints.

More than one replica: ``--leader-elect``. Every replica runs kopf's watch (so it knows
every ModelDeployment), but only the one holding the Lease ``--lease-name`` in
``--lease-namespace`` runs reconcile loops (kube/leader.py, election.py); the others
take the Lease over once it is not renewed for ``--lease-duration-seconds``. kopf's own
peering is not used: it pauses kopf's handlers, not the loops they started. Without
the flag, run exactly one replica. Reconciles are idempotent and state lives in status,
so a hand-over or restart resumes every rollout at the step it was at.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import httpx
import kopf
from prometheus_client import start_http_server

from modelrollout.settings_fields import check_bounds, setting

from .election import ElectionTiming
from .handlers import Loops, register
from .kube.api import Api, RateLimiter, configuration, for_informers
from .kube.apply import Applier
from .kube.cache import CACHED_KINDS, ChildCache, Reads
from .kube.leader import LeaderElector
from .metrics import OperatorMetrics
from .reconcile import Shell

log = logging.getLogger("modelrollout.operator")
_TIMING = ElectionTiming()  # the election's own defaults


@dataclass(frozen=True)
class OperatorSettings:
    """Everything `modelrollout operator` can be told. Each field declares its option
    (modelrollout/settings_fields.py), in the order of `modelrollout operator --help`."""

    namespaces: tuple[str, ...] = setting(
        (), flag="--namespace",
        help="Namespace whose ModelDeployments to manage (repeatable); none given: the whole cluster.")
    kubeconfig: Path | None = setting(
        None, file_only=True, help="kubeconfig file (default: in-cluster config, else ~/.kube/config).")
    tick_seconds: float = setting(
        2.0, at_least=0.1,
        help="How often a ModelDeployment with a rollout under way is reconciled (also at once on "
        "every change of it or of what it owns).")
    resync_seconds: float = setting(
        300.0, at_least=1,
        help="How often a settled ModelDeployment (Healthy, or Degraded with nothing pending) is "
        "reconciled when nothing changes.")
    api_qps: float = setting(
        50.0, at_least=0.1,
        help="Client-side limit on the reconciles' API calls a second; when calls wait for it, an "
        "abort's or a rollback's go first (the watches and the Lease are not limited).")
    api_burst: int = setting(100, at_least=1, help="API calls let through at once before --api-qps applies.")
    metrics_host: str = setting(
        "127.0.0.1", help="Address of the metrics and liveness endpoints (0.0.0.0 in a pod).")
    metrics_port: int = setting(9180, help="Prometheus metrics at /metrics.")
    liveness_port: int = setting(8081, help="kopf's liveness probe at /healthz.")
    leader_elect: bool = setting(
        False,
        help="Run as one of several replicas: only the holder of a Lease reconciles (docs/operator.md).")
    lease_name: str = setting("modelrollout-operator", help="With --leader-elect: the Lease's name.")
    lease_namespace: str | None = setting(
        None,
        help="With --leader-elect: the Lease's namespace (default: the pod's own, else modelrollout-system).")
    lease_duration_seconds: float = setting(
        _TIMING.lease_duration_seconds, at_least=1,
        help="With --leader-elect: a Lease not renewed this long is taken over.")
    renew_deadline_seconds: float = setting(
        _TIMING.renew_deadline_seconds, at_least=0.5,
        help="With --leader-elect: a leader that could not renew this long stops reconciling.")
    retry_seconds: float = setting(
        _TIMING.retry_seconds, at_least=0.1,
        help="With --leader-elect: how often the Lease is renewed or looked at.")

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.leader_elect:
            self.timing.check()

    @property
    def timing(self) -> ElectionTiming:
        return ElectionTiming(self.lease_duration_seconds, self.renew_deadline_seconds, self.retry_seconds)


def run(settings: OperatorSettings) -> None:
    asyncio.run(serve(settings))


async def serve(settings: OperatorSettings, stop_flag: asyncio.Event | None = None) -> None:
    if settings.leader_elect:
        settings.timing.check()
    # kopf says "Handler ... succeeded" at INFO for every event of every ModelDeployment: with
    # a thousand of them that is most of the log and of the operator's CPU; its warnings stay.
    objects = logging.getLogger("kopf.objects")
    objects.setLevel(max(logging.getLogger().level, logging.WARNING))
    client_configuration = configuration(settings.kubeconfig)
    api = Api(client_configuration, limiter=RateLimiter(settings.api_qps, settings.api_burst))
    metrics = OperatorMetrics()
    start_http_server(settings.metrics_port, settings.metrics_host, registry=metrics.registry)
    instance = f"{socket.gethostname()}-{os.getpid()}"
    elector: LeaderElector | None = None
    async with httpx.AsyncClient(trust_env=False) as http:
        # The objects it owns, from informers (their own client: each watch holds a connection).
        informers = len(CACHED_KINDS) * max(1, len(settings.namespaces))
        cache = ChildCache(Api(for_informers(client_configuration, informers)), settings.namespaces,
                           lambda namespace, name: loops.wake(namespace, name))
        applier = Applier(api, instance, Reads(api, cache))
        loops = Loops(Shell(api, applier, http, metrics), settings.tick_seconds, settings.resync_seconds,
                      active=not settings.leader_elect)
        cache.start()
        if settings.leader_elect:
            # Its own client: a renewal must not wait behind the reconciles' requests, and must
            # give up well within the renew deadline.
            lease_api = Api(client_configuration, timeout_seconds=settings.retry_seconds)
            elector = LeaderElector(lease_api, settings.lease_namespace or own_namespace(),
                                    settings.lease_name, instance, settings.timing,
                                    on_start=loops.lead, on_stop=loops.follow)
            loops.may_act = elector.is_leading
        registry = kopf.OperatorRegistry()
        register(registry, loops)

        @kopf.on.login(registry=registry)
        def login(**_) -> kopf.ConnectionInfo:
            return connection_info(client_configuration)

        namespaces = settings.namespaces

        @kopf.on.startup(registry=registry)
        def configure(settings: kopf.OperatorSettings, **_) -> None:
            settings.posting.level = logging.WARNING  # our own Events say what happened
            settings.posting.reporting_component = "modelrollout-operator"
            settings.posting.reporting_instance = instance
            settings.watching.server_timeout = 300
            settings.watching.client_timeout = 330
            settings.watching.connect_timeout = 10
            settings.networking.request_timeout = 30
            # Given namespaces are taken as existing: no namespace list or watch (less RBAC),
            # and resources are discovered once at start (install the CRD before the operator).
            settings.scanning.disabled = bool(namespaces)

        where = "all namespaces" if not settings.namespaces else ", ".join(settings.namespaces)
        log.info("modelrollout operator watching ModelDeployments in %s", where)
        election = asyncio.create_task(elector.run(), name="leader election") if elector else None
        try:
            await kopf.operator(
                registry=registry,
                clusterwide=not settings.namespaces,
                namespaces=settings.namespaces,
                standalone=True,  # one replica acts: leader election, not kopf peering (see above)
                liveness_endpoint=f"http://{settings.metrics_host}:{settings.liveness_port}/healthz",
                stop_flag=stop_flag,
            )
        finally:
            if election is not None:
                election.cancel()
                await asyncio.gather(election, return_exceptions=True)
            await loops.close()
            await cache.close()
            if elector is not None:
                await elector.release()  # after the loops stopped: the next leader starts clean
                elector.api.close()
            api.close()


_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def own_namespace() -> str:
    """The namespace of the operator's pod (where its Lease lives), else modelrollout-system."""
    try:
        return _SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "modelrollout-system"
    except OSError:
        return "modelrollout-system"


def connection_info(configuration) -> kopf.ConnectionInfo:
    """kopf's connection from the same configuration the operator's own client uses."""
    token = None
    authorization = (configuration.api_key or {}).get("authorization") or (configuration.api_key or {}).get(
        "BearerToken")
    if authorization:
        token = authorization.removeprefix("Bearer ").strip()
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        username=configuration.username or None,
        password=configuration.password or None,
        proxy_url=configuration.proxy,
    )
