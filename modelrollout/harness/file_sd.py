"""Prometheus' Kubernetes service discovery, as a file SD JSON: one target per pod (labels
job, namespace, pod, model_deployment) plus the extra targets given (the gateway, the
operator); rewritten atomically, and only when it changes."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from modelrollout.operator.kube.manifests import MODEL_DEPLOYMENT_LABEL

from .pods import Pod

SCRAPE_JOB = "modelrollout-server"
# series <- pod label. Not the revision: the server puts that on its metrics itself (--revision).
SCRAPE_LABELS = {"model_deployment": MODEL_DEPLOYMENT_LABEL}


class FileSD:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._written: str | None = None

    def write(self, targets: Mapping[str, Mapping[str, str]], pods: Iterable[Pod]) -> None:
        entries = [{"targets": [address], "labels": dict(labels)}
                   for address, labels in sorted(targets.items())]
        for pod in sorted(pods, key=lambda p: (p.namespace, p.name)):
            if pod.finished:
                continue
            labels = {"job": SCRAPE_JOB, "namespace": pod.namespace, "pod": pod.name}
            for key, label in SCRAPE_LABELS.items():
                if label in pod.template.labels:
                    labels[key] = str(pod.template.labels[label])
            entries.append({"targets": [f"127.0.0.1:{pod.port}"], "labels": labels})
        text = json.dumps(entries, indent=1) + "\n"
        if text == self._written:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        temporary.write_text(text)
        os.replace(temporary, self.path)  # Prometheus never reads half a file
        self._written = text
