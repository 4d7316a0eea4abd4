"""The golden-set gate: does the candidate do as well as stable on the examples stored with
the model? Pure; the shell replays the examples (kube/observe.py) and hands over the scores.

Classifiers: accuracy at least ``minAccuracy`` and at least stable's minus ``tolerance``.
Regressors: the largest absolute error at most ``maxAbsError`` (when given) and at most
stable's plus ``tolerance``. On a first deployment there is no stable to compare with: the
absolute bound alone decides. An example the candidate gave no usable answer for counts as
wrong (an infinite error).
"""

from __future__ import annotations

from dataclasses import dataclass

from modelrollout.serving.contract.golden import GoldenScore

from ..spec import GoldenSet


@dataclass(frozen=True)
class GoldenResult:
    """Both revisions' scores on the candidate's golden set."""

    kind: str  # "classification" or "regression"
    candidate: GoldenScore
    stable: GoldenScore | None  # None: nothing to compare with (a first deployment)


def judge(gate: GoldenSet, result: GoldenResult) -> str | None:
    """What fails, or None when the candidate passes."""
    ours, theirs = result.candidate, result.stable
    if result.kind == "classification":
        accuracy = ours.accuracy or 0.0
        if accuracy < gate.min_accuracy:
            return f"golden-set accuracy {accuracy:.4g} below minAccuracy {gate.min_accuracy:g}"
        if theirs is not None and accuracy < (theirs.accuracy or 0.0) - gate.tolerance:
            return (f"golden-set accuracy {accuracy:.4g} worse than stable's {theirs.accuracy:.4g} by more "
                    f"than the tolerance {gate.tolerance:g}")
        return None
    error = ours.max_abs_error if ours.max_abs_error is not None else float("inf")
    if gate.max_abs_error is not None and error > gate.max_abs_error:
        return f"golden-set max abs error {error:.4g} above maxAbsError {gate.max_abs_error:g}"
    worst = None if theirs is None else theirs.max_abs_error
    if worst is not None and error > worst + gate.tolerance:
        return (f"golden-set max abs error {error:.4g} worse than stable's {worst:.4g} by "
                f"more than the tolerance {gate.tolerance:g}")
    return None


def summary(result: GoldenResult) -> dict:
    """What status.goldenSet shows: both scores on the same examples."""
    def of(score: GoldenScore | None) -> dict | None:
        if score is None:
            return None
        if result.kind == "classification":
            return {"accuracy": score.accuracy, "correct": score.correct, "failed": score.failed}
        return {"maxAbsError": score.max_abs_error, "meanAbsError": score.mean_abs_error,
                "failed": score.failed}

    return {"examples": result.candidate.examples, "kind": result.kind, "candidate": of(result.candidate),
            "stable": of(result.stable)}


def describe(result: GoldenResult) -> str:
    measure = "accuracy" if result.kind == "classification" else "max abs error"

    def value(score: GoldenScore | None) -> str:
        number = None if score is None else (score.accuracy if result.kind == "classification"
                                             else score.max_abs_error)
        return "-" if number is None else f"{number:.4g}"

    text = f"golden set: {measure} {value(result.candidate)} on {result.candidate.examples} examples"
    return text + (f", stable {value(result.stable)}" if result.stable is not None else "")
