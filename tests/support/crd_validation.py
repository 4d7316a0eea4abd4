"""Validate an object against a CRD version the way the API server does, without an API server.

What is checked, in the API server's order (decode, prune, default, validate):

    unknown fields    strict=True: a field the schema does not declare is an error (the
                      server would prune it without a word, as `--validate=strict` reports)
    defaults          the schema's `default`s are filled in before anything is validated
    schema            the openAPIV3Schema, turned into JSON Schema (x-kubernetes-* dropped,
                      nullable -> a null type) and checked with jsonschema
    list types        x-kubernetes-list-type set (unique items) and map (unique keys)
    CEL               every x-kubernetes-validations rule on every node present in the
                      object, with `self` bound to that node's value (celpy)
    metadata          name, namespace, labels and ownerReferences as ObjectMeta validation
                      checks them (a custom resource's schema cannot constrain metadata)

A CEL rule that celpy cannot evaluate (a function it lacks, e.g. isURL) is *skipped*, not
passed: it is listed in the result so a test can fail on it. Transition rules (oldSelf)
are skipped too; the API server does not run them on create either.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import celpy
import jsonschema
import yaml

# --- OpenAPI -> JSON Schema --------------------------------------------------------------


def to_jsonschema(node: object, strict: bool = False) -> object:
    """OpenAPI v3 (Kubernetes flavour) -> JSON Schema: drop x-kubernetes-*, turn nullable into a type.

    ``strict``: objects that declare properties (and do not preserve unknown fields) allow no
    others, so a misspelt field fails instead of being pruned.
    """
    if isinstance(node, list):
        return [to_jsonschema(n, strict) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_jsonschema(v, strict) if k not in ("default", "enum") else v for k, v in node.items()
           if not k.startswith("x-kubernetes-") and k != "nullable"}
    if "properties" in node and isinstance(node["properties"], dict):
        # 'properties' maps names to schemas: a property called "default" is not a keyword
        out["properties"] = {k: to_jsonschema(v, strict) for k, v in node["properties"].items()}
    if node.get("nullable") and "type" in node:
        out["type"] = [node["type"], "null"]
    if (strict and "properties" in node and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


# --- defaults ----------------------------------------------------------------------------


def apply_defaults(schema: dict, value: object) -> object:
    """A copy of ``value`` with the schema's defaults filled in, as the API server stores it."""
    if isinstance(value, dict):
        if "properties" in schema:
            out = {}
            for name, sub in schema["properties"].items():
                if name in value:
                    out[name] = apply_defaults(sub, value[name])
                elif "default" in sub:
                    out[name] = apply_defaults(sub, copy.deepcopy(sub["default"]))
            out.update({k: copy.deepcopy(v) for k, v in value.items() if k not in out})
            return out
        if isinstance(schema.get("additionalProperties"), dict):
            return {k: apply_defaults(schema["additionalProperties"], v) for k, v in value.items()}
        return copy.deepcopy(value)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], v) for v in value]
    return value


# --- CEL ---------------------------------------------------------------------------------

_CEL = celpy.Environment()
# Property names that are CEL keywords are reached as __name__ (Kubernetes' escaping rules).
_CEL_RESERVED = {"true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function",
                 "if", "import", "let", "loop", "package", "namespace", "return", "var", "void", "while"}
_CEL_ACCESSIBLE = re.compile(r"^[a-zA-Z_.\-/][a-zA-Z0-9_.\-/]*$")
_UNDECLARED = re.compile(r"undeclared reference to '([^']+)'")


def cel_property_name(name: str) -> str | None:
    """The name a rule uses for property ``name``; None for a name CEL cannot reach."""
    if name in _CEL_RESERVED:
        return f"__{name}__"
    if not _CEL_ACCESSIBLE.match(name):
        return None
    return (name.replace("__", "__underscores__").replace(".", "__dot__").replace("-", "__dash__")
            .replace("/", "__slash__"))


def cel_value(schema: dict, value: object) -> object:
    """The value as the API server hands it to CEL: a `number` is a double even when written 1,
    and property names are escaped."""
    if isinstance(value, dict):
        if "properties" in schema:
            props = schema["properties"]
            out = {}
            for name, sub in value.items():
                escaped = cel_property_name(name)
                if escaped is not None:
                    out[escaped] = cel_value(props.get(name, {}), sub)
            return out
        values = schema.get("additionalProperties")
        return {k: cel_value(values if isinstance(values, dict) else {}, v) for k, v in value.items()}
    if isinstance(value, list):
        return [cel_value(schema.get("items", {}), v) for v in value]
    if schema.get("type") == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def rules(schema: dict, path: str = "") -> list[tuple[str, dict]]:
    """Every x-kubernetes-validations rule of the schema, with the schema path it sits at."""
    found = [(path, rule) for rule in schema.get("x-kubernetes-validations", [])]
    for name, sub in schema.get("properties", {}).items():
        found += rules(sub, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        found += rules(schema["additionalProperties"], f"{path}.*")
    if "items" in schema:
        found += rules(schema["items"], f"{path}[]")
    return found


@cache
def cel_program(text: str):
    return _CEL.program(_CEL.compile(text))


@dataclass
class CelReport:
    violations: list[tuple[str, str]] = field(default_factory=list)  # (path, message): the rule said false
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (path, rule, error): evaluation failed
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (path, rule, why): not evaluated
    evaluated: list[tuple[str, str]] = field(default_factory=list)  # (path, rule)


def evaluate_cel(schema: dict, value: object, path: str = "", report: CelReport | None = None) -> CelReport:
    """Evaluate every rule on every node of ``value`` that the schema puts a rule on."""
    report = report if report is not None else CelReport()
    for rule in schema.get("x-kubernetes-validations", []):
        _evaluate_rule(rule, schema, value, path, report)
    if isinstance(value, dict):
        if "properties" in schema:
            for name, sub in schema["properties"].items():
                if name in value:
                    evaluate_cel(sub, value[name], f"{path}.{name}" if path else name, report)
        elif isinstance(schema.get("additionalProperties"), dict):
            for name, sub in value.items():
                evaluate_cel(schema["additionalProperties"], sub, f"{path}[{name!r}]", report)
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            evaluate_cel(schema["items"], item, f"{path}[{i}]", report)
    return report


def _evaluate_rule(rule: dict, schema: dict, value: object, path: str, report: CelReport) -> None:
    text = rule["rule"]
    if re.search(r"\boldSelf\b", text):
        report.skipped.append((path, text, "transition rule (oldSelf): not run on create"))
        return
    try:
        program = cel_program(text)
    except Exception as error:  # noqa: BLE001 - any compile failure means "celpy cannot run it"
        report.skipped.append((path, text, f"celpy cannot compile it: {error}"))
        return
    try:
        result = program.evaluate({"self": celpy.json_to_cel(cel_value(schema, value))})
    except celpy.CELEvalError as error:
        result = error
    if isinstance(result, celpy.CELEvalError):
        missing = _UNDECLARED.search(str(result.args[0] if result.args else result))
        if missing and missing.group(1) != "self":
            report.skipped.append((path, text, f"celpy lacks {missing.group(1)}()"))
        else:
            report.errors.append((path, text, str(result.args[0] if result.args else result)))
        return
    report.evaluated.append((path, text))
    if not isinstance(result, celpy.celtypes.BoolType):
        report.errors.append((path, text, f"did not evaluate to a bool: {result!r}"))
    elif not result:
        report.violations.append((path, rule.get("message", text)))


def cel_violations(schema: dict, value: object, path: str = "spec") -> list[tuple[str, str]]:
    """(path, message) of every CEL rule that fails; a rule that errors or cannot run is a bug here."""
    report = evaluate_cel(schema, value, path)
    if report.errors or report.skipped:
        raise AssertionError(f"CEL rules that did not evaluate: {report.errors + report.skipped}")
    return report.violations


# --- list types --------------------------------------------------------------------------


def list_type_errors(schema: dict, value: object, path: str = "") -> list[str]:
    """x-kubernetes-list-type: set items are unique, map items have unique keys."""
    errors = []
    if isinstance(value, list):
        kind = schema.get("x-kubernetes-list-type")
        if kind == "set":
            seen = [repr(v) for v in value]
            if len(set(seen)) != len(seen):
                errors.append(f"{path}: duplicate items in a list-type set")
        elif kind == "map":
            keys = [tuple(repr(v.get(k)) for k in schema.get("x-kubernetes-list-map-keys", []))
                    for v in value if isinstance(v, dict)]
            if len(set(keys)) != len(keys):
                errors.append(f"{path}: duplicate keys in a list-type map")
        for i, item in enumerate(value):
            errors += list_type_errors(schema.get("items", {}), item, f"{path}[{i}]")
    elif isinstance(value, dict):
        props = schema.get("properties", {})
        values = schema.get("additionalProperties")
        for name, sub in value.items():
            sub_schema = props.get(name, values if isinstance(values, dict) else {})
            errors += list_type_errors(sub_schema, sub, f"{path}.{name}" if path else name)
    return errors


# --- metadata ----------------------------------------------------------------------------

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def metadata_errors(metadata: dict, namespaced: bool = True) -> list[str]:
    """What ObjectMeta validation of a custom resource rejects (the parts we write)."""
    errors = []
    name = metadata.get("name", "")
    if not (DNS_SUBDOMAIN.match(name) and len(name) <= 253):
        errors.append(f"metadata.name: {name!r} is not a DNS-1123 subdomain")
    namespace = metadata.get("namespace")
    if namespaced and not (namespace and DNS_LABEL.match(namespace) and len(namespace) <= 63):
        errors.append(f"metadata.namespace: {namespace!r} is not a DNS-1123 label")
    for key, value in metadata.get("labels", {}).items():
        prefix, _, label = key.rpartition("/")
        if prefix and not (DNS_SUBDOMAIN.match(prefix) and len(prefix) <= 253):
            errors.append(f"metadata.labels: key {key!r} has an invalid prefix")
        if not (_LABEL_NAME.match(label) and len(label) <= 63):
            errors.append(f"metadata.labels: key {key!r} has an invalid name")
        if not isinstance(value, str) or (value and not (_LABEL_NAME.match(value) and len(value) <= 63)):
            errors.append(f"metadata.labels[{key!r}]: {value!r} is not a valid label value")
    references = metadata.get("ownerReferences", [])
    for i, reference in enumerate(references):
        for required in ("apiVersion", "kind", "name", "uid"):
            if not reference.get(required):
                errors.append(f"metadata.ownerReferences[{i}].{required}: required")
    if sum(1 for r in references if r.get("controller")) > 1:
        errors.append("metadata.ownerReferences: only one reference can have controller set to true")
    return errors


# --- a CRD version -----------------------------------------------------------------------


@dataclass
class Validation:
    errors: list[str]  # 'path: message' from every check; empty when the API server would accept it
    skipped: list[tuple[str, str, str]]  # CEL rules on nodes of the object that were not evaluated
    evaluated: list[tuple[str, str]]  # CEL rules that were evaluated, (path, rule)


class CrdVersion:
    """One served version of a CRD: ``CrdVersion.load(path, "v1").validate(doc)``."""

    def __init__(self, crd: dict, version: str) -> None:
        (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
        self.crd = crd
        self.version = version
        self.api_version = f"{crd['spec']['group']}/{version}"
        self.kind = crd["spec"]["names"]["kind"]
        self.namespaced = crd["spec"]["scope"] == "Namespaced"
        self.schema: dict = served["schema"]["openAPIV3Schema"]
        self._validator = jsonschema.Draft202012Validator(to_jsonschema(self.schema, strict=True))

    @classmethod
    def load(cls, path: Path, version: str) -> CrdVersion:
        (crd,) = [d for d in yaml.safe_load_all(path.read_text()) if d]
        return cls(crd, version)

    def validate(self, doc: dict) -> Validation:
        errors = []
        if (doc.get("apiVersion"), doc.get("kind")) != (self.api_version, self.kind):
            errors.append(f"apiVersion/kind: {doc.get('apiVersion')}/{doc.get('kind')} is not "
                          f"{self.api_version}/{self.kind}")
        errors += metadata_errors(doc.get("metadata", {}), self.namespaced)
        body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
        stored = apply_defaults(self.schema, body)
        errors += [_dotted(e.absolute_path) + ": " + e.message for e in self._validator.iter_errors(stored)]
        errors += list_type_errors(self.schema, stored)
        report = evaluate_cel(self.schema, stored)
        errors += [f"{path}: {message}" for path, message in report.violations]
        errors += [f"{path}: CEL rule {rule!r} failed to evaluate: {error}"
                   for path, rule, error in report.errors]
        return Validation(errors, report.skipped, report.evaluated)


def _dotted(parts) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(root)"
