"""Read what a Dockerfile's final stage would run: no container engine exists here,
so the tests run that command line in the test environment instead."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class FinalStage:
    base: str
    user: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    run_lines: list[str] = field(default_factory=list)


def final_stage(path: Path) -> FinalStage:
    stage: FinalStage | None = None
    for line in _logical_lines(path.read_text()):
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            stage = FinalStage(base=rest.split()[0])
        elif stage is None:
            continue
        elif word == "USER":
            stage.user = rest.strip()
        elif word == "ENV":
            stage.env.update(_env_pairs(rest))
        elif word == "ENTRYPOINT":
            stage.entrypoint = json.loads(rest)
        elif word == "CMD":
            stage.cmd = json.loads(rest)
        elif word == "RUN":
            stage.run_lines.append(rest)
    assert stage is not None, f"{path} has no FROM"
    return stage


def _logical_lines(text: str) -> list[str]:
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    return lines


def _env_pairs(rest: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in shlex.split(rest))
