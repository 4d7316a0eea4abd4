"""Run `modelrollout operator`: kopf with our handlers, metrics and liveness endpoints.

More than one replica: kopf peering. With ``--peering NAME`` (and kopf's peering CRDs
installed, manifests/rbac/operator.yaml grants them) every replica announces itself,
and only the one with the highest ``--priority`` handles ModelDeployments while the
others stand by and take over when it stops renewing. Without it (the default,
``standalone``) run exactly one replica. Reconciles are idempotent and state lives in
status, so a hand-over or restart resumes every rollout at the step it was at.
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

from .handlers import Loops, register
from .kube.api import Api, configuration
from .kube.apply import Applier
from .metrics import OperatorMetrics
from .reconcile import Shell

log = logging.getLogger("modelrollout.operator")


@dataclass(frozen=True)
class OperatorSettings:
    namespaces: tuple[str, ...]  # empty: the whole cluster
    kubeconfig: Path | None
    tick_seconds: float
    metrics_host: str
    metrics_port: int
    liveness_port: int
    peering: str | None
    priority: int


def run(settings: OperatorSettings) -> None:
    asyncio.run(serve(settings))


async def serve(settings: OperatorSettings, stop_flag: asyncio.Event | None = None) -> None:
    client_configuration = configuration(settings.kubeconfig)
    api = Api(client_configuration)
    metrics = OperatorMetrics()
    start_http_server(settings.metrics_port, settings.metrics_host, registry=metrics.registry)
    instance = f"{socket.gethostname()}-{os.getpid()}"
    async with httpx.AsyncClient(trust_env=False) as http:
        loops = Loops(Shell(api, Applier(api, instance), http, metrics), settings.tick_seconds)
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
        try:
            await kopf.operator(
                registry=registry,
                clusterwide=not settings.namespaces,
                namespaces=settings.namespaces,
                standalone=settings.peering is None,
                peering_name=settings.peering,
                priority=settings.priority,
                liveness_endpoint=f"http://{settings.metrics_host}:{settings.liveness_port}/healthz",
                stop_flag=stop_flag,
            )
        finally:
            await loops.close()
            api.close()


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
