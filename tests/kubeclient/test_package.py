"""The package's public names, and that it needs only the standard library and kubernetes
(what the gateway image has; import-linter checks the same from the other side)."""

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


def test_it_imports_only_the_standard_library_and_kubernetes():
    for module in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = [(node.module or "").split(".")[0]]
            else:
                continue
            for root in roots:
                assert root in sys.stdlib_module_names or root in ("__future__", "kubernetes"), \
                    f"{module.name} imports {root}"
