"""Where the API server is: the kubeconfig given, else the pod's service account, else the
default kubeconfig."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelrollout.harness.emulator import KubeEmulator
from modelrollout.kubeclient import ConfigurationError, configuration, for_informers


def test_the_kubeconfig_given_is_used(tmp_path: Path):
    with KubeEmulator(tmp_path) as kube:
        assert configuration(kube.kubeconfig).host == kube.url
        assert configuration(str(kube.kubeconfig)).host == kube.url


def test_without_one_outside_a_pod_the_default_kubeconfig_is_used(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)  # not in a pod
    # The client reads $KUBECONFIG once, when imported; ~ is expanded at each load.
    monkeypatch.setattr("kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", "~/.kube/config")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with KubeEmulator(tmp_path) as kube:
        (tmp_path / "home" / ".kube").mkdir(parents=True)
        (tmp_path / "home" / ".kube" / "config").write_text(kube.kubeconfig.read_text())
        assert configuration(None).host == kube.url


def test_no_usable_configuration_is_one_clear_error(tmp_path: Path, monkeypatch):
    with pytest.raises(ConfigurationError, match="no usable Kubernetes configuration"):
        configuration(tmp_path / "missing")
    (tmp_path / "broken").write_text("clusters: [")
    with pytest.raises(ConfigurationError, match="no usable Kubernetes configuration"):
        configuration(tmp_path / "broken")


def test_informers_get_a_copy_with_a_connection_each_and_no_retries_of_their_own(tmp_path: Path):
    with KubeEmulator(tmp_path) as kube:
        shared = configuration(kube.kubeconfig)
        tuned = for_informers(shared, 40)
        assert tuned.connection_pool_maxsize == 42 and tuned.retries == 0 and tuned.host == shared.host
        assert shared.retries is None and shared.connection_pool_maxsize != 42
