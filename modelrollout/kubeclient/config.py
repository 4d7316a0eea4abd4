"""Where the API server is and who we are to it: one way for every process and tool."""

from __future__ import annotations

import copy
import os

from kubernetes import client, config


class ConfigurationError(RuntimeError):
    """No kubeconfig, no service account, or one that cannot be read."""


def configuration(kubeconfig: str | os.PathLike | None = None) -> client.Configuration:
    """From the ``kubeconfig`` file when given; else the pod's service account (in a
    cluster); else the default kubeconfig ($KUBECONFIG, then ~/.kube/config), as kubectl
    looks for it. Auth, TLS and proxies are the official client's."""
    settings = client.Configuration()
    try:
        if kubeconfig:
            config.load_kube_config(config_file=os.fspath(kubeconfig), client_configuration=settings,
                                    persist_config=False)
        else:
            try:
                config.load_incluster_config(client_configuration=settings)
            except config.ConfigException:
                config.load_kube_config(client_configuration=settings, persist_config=False)
    except Exception as exc:  # noqa: BLE001 - missing, unreadable, not YAML, not a kubeconfig: all the same to us
        raise ConfigurationError(f"no usable Kubernetes configuration: {exc}") from exc
    return settings


def for_informers(settings: client.Configuration, informers: int) -> client.Configuration:
    """A copy of ``settings`` for a client that informers share: a connection for each open
    watch plus room for the lists made while relisting, and no retries by urllib3, which
    would retry a refused connection three times at once and log each: the informer's own
    backoff is the retry (informer.py)."""
    tuned = copy.deepcopy(settings)
    tuned.connection_pool_maxsize = max(informers + 2, tuned.connection_pool_maxsize or 0)
    tuned.retries = 0
    return tuned
