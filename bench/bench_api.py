"""The cost of the typed ModelDeployment API in one reconcile: parsing a spec, reading and
writing a status, and the engine's decision, timed on one spec and one status.

    .venv/bin/python -P bench/bench_api.py                    # this checkout
    .venv/bin/python -P bench/bench_api.py --tree DIR         # another one, laid out as the wheel

``--tree`` measures another version of the code with the same spec and status: DIR holds a
``modelrollout`` package with ``operator/``, ``serving/`` and ``manifests/`` inside it (as
the wheel lays them out; tests/test_architecture.py builds such a tree the same way). Run
the two alternately: the figures are the best of five repeats of ``--number`` calls each.
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "manifests" / "examples" / "canary-builtin.yaml"
# A canary's status in the middle of an analysis step, recorded from a real rollout.
STATUS = ROOT / "tests" / "data" / "argocd" / "canary-Progressing-AnalysisRunning.json"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=None, help="measure the code in this wheel-shaped tree")
    parser.add_argument("--number", type=int, default=3000, help="calls per repeat")
    args = parser.parse_args(argv)
    if args.tree is not None:  # ahead of this checkout's editable install
        sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
        sys.path.insert(0, str(args.tree.resolve()))

    import yaml
    from modelrollout.operator.engine import Observations, decide
    from modelrollout.operator.spec import parse_spec
    from modelrollout.operator.status import status_from_doc, status_to_doc

    spec_doc = yaml.safe_load(SPEC.read_text())["spec"]
    status = status_from_doc(json.loads(STATUS.read_text())["status"])
    written = status_to_doc(status)
    spec, now = parse_spec(spec_doc), datetime.now(UTC)
    fields = Observations.__dataclass_fields__
    seen = {"stable_ready_replicas": 4, "candidate_ready_replicas": 4}
    observations = Observations(**seen, **({"stable_ready": True} if "stable_ready" in fields else {}))
    print(f"code: {sys.modules['modelrollout.operator.spec'].__file__}")
    total = 0.0
    for name, call in (("parse_spec", lambda: parse_spec(spec_doc)),
                       ("status_from_doc", lambda: status_from_doc(written)),
                       ("status_to_doc", lambda: status_to_doc(status)),
                       ("decide", lambda: decide(spec, status, observations, now))):
        best = min(timeit.repeat(call, number=args.number, repeat=5)) / args.number
        total += best
        print(f"{name:16} {best * 1e6:7.1f} us")
    print(f"{'one reconcile':16} {total * 1e6:7.1f} us  (the four together)")


if __name__ == "__main__":
    main()
