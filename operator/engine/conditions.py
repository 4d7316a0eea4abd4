"""The standard conditions, derived from phase and reason after every decision. Pure."""

from __future__ import annotations

from ..status import (
    AVAILABLE,
    DEGRADED,
    HEALTHY,
    HEALTHY_CONDITION,
    INVALID_SPEC,
    PAUSED,
    PAUSED_CONDITION,
    PROGRESSING,
    PROGRESSING_CONDITION,
    SPEC_VALID,
    STABLE_READY,
    Condition,
    RolloutStatus,
    set_condition,
)


def with_conditions(status: RolloutStatus, at: str) -> RolloutStatus:
    generation = status.observed_generation
    phase, reason, message = status.phase, status.reason or status.phase, status.message

    def condition(kind: str, is_true: bool, why: str, text: str = "") -> Condition:
        return Condition(type=kind, status="True" if is_true else "False", reason=why, message=text,
                         observed_generation=generation)

    wanted = [
        # Stable serves whatever else happens: available unless it is not ready (yet).
        condition(AVAILABLE, status.stable_revision is not None and not (
            phase == PROGRESSING and status.reason == STABLE_READY), STABLE_READY),
        condition(PROGRESSING_CONDITION, phase == PROGRESSING, reason, message),
        condition(PAUSED_CONDITION, phase == PAUSED, reason if phase == PAUSED else "NotPaused",
                  message if phase == PAUSED else ""),
        condition(HEALTHY_CONDITION, phase == HEALTHY, reason,
                  message if phase in (HEALTHY, DEGRADED) else ""),
        condition(INVALID_SPEC, False, SPEC_VALID),
    ]
    conditions = status.conditions
    for new in wanted:
        conditions, _ = set_condition(conditions, new, at)
    return status.with_(conditions=conditions)
