"""Write what is generated from the API module (operator/api/): the CRD (manifests/ and the
chart's copy) and docs/api.md. ``--check`` only says whether they are up to date (a test runs
it). Tooling, not shipped in the wheel, as monitoring/'s generators.

    .venv/bin/python -P scripts/generate_api.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modelrollout.operator.api import crd, reference

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = {
    ROOT / "manifests" / "crd" / "modeldeployments.yaml": crd.render,
    ROOT / "charts" / "modelrollout" / "crds" / "modeldeployments.yaml": crd.render,
    ROOT / "docs" / "api.md": reference.render,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write the CRD and docs/api.md from operator/api/v1alpha1.py.")
    parser.add_argument("--check", action="store_true", help="only say whether the files are up to date")
    args = parser.parse_args(argv)
    stale = []
    for path, render in OUTPUTS.items():
        text = render()
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
            continue
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    for path in stale:
        print(f"{path.relative_to(ROOT)} is out of date: run .venv/bin/python -P scripts/generate_api.py",
              file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
