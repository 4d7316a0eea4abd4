"""The package's public names, and that it needs only the standard library, kubernetes and the
ModelDeployment's names from the shared contract (what the gateway image has; import-linter
checks the same from the other side)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import modelrollout.kubeclient as kubeclient

PACKAGE = Path(kubeclient.__file__).parent


def test_the_public_names_are_exactly_what_all_lists():
    exported = {name for name in vars(kubeclient) if not name.startswith("_")}
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert set(kubeclient.__all__) == exported - modules - {"annotations"}
    assert {"Api", "Informer", "Backoff", "configuration", "describe_error"} <= set(kubeclient.__all__)


SHARED_NAMES = "modelrollout.serving.contract.resource"


def test_it_imports_only_the_standard_library_kubernetes_and_the_resource_names():
    for module in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                root = name.split(".")[0]
                assert root in sys.stdlib_module_names or root in ("__future__", "kubernetes") \
                    or name == SHARED_NAMES, f"{module.name} imports {name}"
