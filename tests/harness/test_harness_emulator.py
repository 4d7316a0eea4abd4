"""What the harness adds to kmock's emulator: a bounded request history."""

from __future__ import annotations

from modelrollout.operator.kube.api import Api, configuration

from modelrollout.harness.emulator import REQUEST_HISTORY, KubeEmulator


def test_request_history_stays_bounded_and_objects_are_kept(tmp_path):
    with KubeEmulator(tmp_path) as kube:
        kube.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "ml"},
                     "spec": {"selector": {"app": "s"}}})
        api = Api(configuration(kube.kubeconfig))
        try:
            for _ in range(REQUEST_HISTORY * 2):
                assert api.get("Service", "ml", "s")["spec"]["selector"] == {"app": "s"}
        finally:
            api.close()
        assert kube.on_loop(lambda: len(kube.emulator._requests)) == REQUEST_HISTORY
