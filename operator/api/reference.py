"""The field reference of the ModelDeployment API (docs/api.md), generated from its schema. Pure.

One table for spec and one for status: every field by its path, its type, its default,
what bounds it (required, ranges, lengths, patterns, enums, the CEL rules' messages) and
its description, all read from the same schema the CRD carries (crd.py).
"""

from __future__ import annotations

from modelrollout.serving.contract.resource import API_VERSION

from .crd import openapi_schema

HEADER = f"""# ModelDeployment API reference ({API_VERSION})

<!-- This is an auto-generated file. DO NOT EDIT: the API is declared in operator/api/v1alpha1.py;
     `.venv/bin/python -P scripts/generate_api.py` writes this page and the CRD. -->

Every field of a ModelDeployment, as the CRD (`manifests/crd/modeldeployments.yaml`) declares
it. `kubectl explain mdep.spec.<field>` prints the same descriptions. A rule is checked twice:
by the API server (the CRD's validation rules) and by the operator, which reports what it
refuses in the `InvalidSpec` condition with the path of the field.
"""


def render() -> str:
    schema = openapi_schema()["properties"]
    parts = [HEADER]
    for top, intro in (("spec", "What a person writes."),
                       ("status", "What the operator writes (and `kubectl modelrollout` reads). Fields "
                                  "marked *for people* are derived for printing and never read back.")):
        parts.append(f"\n## {top}\n\n{intro}\n\n| Field | Type | Default | Bounds | Description |\n"
                     "|---|---|---|---|---|")
        parts += [_row(path, node, required) for path, node, required in _fields(schema[top], top)]
    return "\n".join(parts) + "\n"


def _fields(node: dict, path: str, required: bool = False):
    yield path, node, required
    wanted = set(node.get("required", ()))
    for name, sub in node.get("properties", {}).items():
        yield from _fields(sub, f"{path}.{name}", name in wanted)
    if isinstance(node.get("items"), dict) and node["items"].get("properties"):
        yield from _fields(node["items"], f"{path}[]")


def _row(path: str, node: dict, required: bool) -> str:
    kind = node.get("type", "")
    if kind == "array" and isinstance(node.get("items"), dict):
        kind = f"array of {node['items'].get('type', '')}"
    default = f"`{node['default']}`" if "default" in node else ""
    return f"| `{path}` | {kind} | {default} | {_escape('; '.join(_bounds(node, required)))} | " \
           f"{_escape(node.get('description', ''))} |"


def _bounds(node: dict, required: bool) -> list[str]:
    said = ["required"] if required else []
    for low, high, unit in (("minimum", "maximum", ""), ("minLength", "maxLength", " characters"),
                            ("minItems", "maxItems", " items")):
        if low in node or high in node:
            said.append(f"{node.get(low, '')}..{node.get(high, '')}{unit}")
    if "enum" in node:
        said.append("one of " + ", ".join(f"`{value}`" for value in node["enum"]))
    if "pattern" in node:
        said.append(f"pattern `{node['pattern']}`")
    if node.get("nullable"):
        said.append("nullable")
    if node.get("x-kubernetes-list-type") == "map":
        said.append("unique " + ", ".join(node.get("x-kubernetes-list-map-keys", [])))
    said += [rule["message"] for rule in node.get("x-kubernetes-validations", [])]
    return said


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
