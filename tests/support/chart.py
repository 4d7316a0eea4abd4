"""The Helm chart (charts/modelrollout) rendered and linted by the real Helm engine: the Helm v4
Go SDK that PyPI's helm-python-sdk wraps (no helm binary, no cluster), with the values a user
gives on the command line: `-f FILE` (merged left to right, as Helm merges them) and `--set`
(parsed by Helm's own strvals parser)."""

from __future__ import annotations

import copy
import shlex
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "modelrollout"
EXAMPLES = ROOT / "charts" / "examples"
RELEASE = "modelrollout"  # the release name of docs/install.md: object names are those of manifests/
NAMESPACE = "modelrollout-system"
MONITORING_GROUP = "monitoring.coreos.com"


@dataclass(frozen=True)
class Install:
    """What one `helm install` (or `helm template`) command asks for."""

    release: str = RELEASE
    namespace: str = NAMESPACE
    values_files: tuple[str, ...] = ()  # relative to the clone's root
    sets: tuple[str, ...] = ()  # --set expressions
    set_json: tuple[str, ...] = ()  # --set-json expressions
    flags: frozenset[str] = field(default_factory=frozenset)  # other options, e.g. --create-namespace

    def values(self) -> dict:
        merged: dict = {}
        for path in self.values_files:
            merged = merge(merged, yaml.safe_load((ROOT / path).read_text()) or {})
        for expression in self.set_json:  # Helm's order: files, --set-json, then --set
            merged = merge(merged, helm.parse_set_json(expression))
        for expression in self.sets:
            merged = merge(merged, helm.parse_set_string(expression))
        return merged


def merge(base: dict, override: dict) -> dict:
    """Helm's merge of two values files: maps merge key by key, anything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@cache
def chart() -> helm.Chart:
    return helm.Chart.load(CHART)


def render(install: Install = Install()) -> list[dict]:
    """The objects of the chart's templates, as `helm template` prints them (no CRDs)."""
    manifests = chart().render(install.values(), name=install.release, namespace=install.namespace,
                               is_install=True)
    return [obj for path, text in sorted(manifests.items()) if not path.endswith("/NOTES.txt")
            for obj in yaml.safe_load_all(text) if obj]


def crds() -> list[tuple[str, str]]:
    """(path in the chart, text) of the chart's crds/ files, which Helm installs before the templates."""
    return [(c["name"], c["data"]) for c in chart().crds]


def lint(install: Install = Install()) -> dict:
    """`helm lint --strict` with the install's values: {"messages": [...], "errors": [...]}."""
    return helm.lint(CHART, install.values(), strict=True, namespace=install.namespace)


def pod_templates(objects: list[dict]) -> list[tuple[str, dict]]:
    """(kind/name, pod template) of every workload rendered."""
    return [(f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]) for o in objects
            if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")]


def find(objects: list[dict], kind: str, name: str, namespace: str | None = None) -> dict:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name
                and (namespace is None or o["metadata"].get("namespace") == namespace)]
    return found


def commands(markdown: str) -> list[Install]:
    """Every `helm install` / `helm upgrade --install` / `helm template` of a Markdown page's
    bash blocks (lines joined at a trailing backslash), as the values they give the chart."""
    found = []
    for block in _bash_blocks(markdown):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:2] in (["helm", "install"], ["helm", "upgrade"], ["helm", "template"]):
                found.append(_install_of(words[2:]))
    return found


def _bash_blocks(markdown: str) -> list[str]:
    blocks, current = [], None
    for line in markdown.splitlines():
        if current is None and line.strip() in ("```bash", "```sh", "```shell"):
            current = []
        elif current is not None and line.strip() == "```":
            blocks.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


_WITH_ARGUMENT = {"-f": "values", "--values": "values", "--set": "set", "--set-json": "set_json",
                  "-n": "namespace", "--namespace": "namespace"}


def _install_of(words: list[str]) -> Install:
    positional, values, sets, set_json, flags, namespace = [], [], [], [], set(), NAMESPACE
    i = 0
    while i < len(words):
        word = words[i]
        if word in _WITH_ARGUMENT:
            kind, argument = _WITH_ARGUMENT[word], words[i + 1]
            i += 2
            if kind == "values":
                values.append(argument)
            elif kind == "set":
                sets.append(argument)
            elif kind == "set_json":
                set_json.append(argument)
            else:
                namespace = argument
            continue
        if word.startswith("-"):
            flags.add(word)
        else:
            positional.append(word)
        i += 1
    release, chart_path = positional  # helm install RELEASE CHART
    if Path(chart_path) != Path("charts/modelrollout"):
        raise ValueError(f"a command installs {chart_path!r}, not charts/modelrollout")
    return Install(release, namespace, tuple(values), tuple(sets), tuple(set_json), frozenset(flags))
