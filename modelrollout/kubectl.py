"""`kubectl modelrollout`: watch a rollout and steer it by hand, without touching spec.

    kubectl modelrollout status iris [-w]
    kubectl modelrollout promote iris [--full]     # next step now / straight to 100%
    kubectl modelrollout abort|pause|resume|retry|recover iris

A command is written to the ModelDeployment's status subresource as
``status.command: {action, id, requestedAt, requestedBy}``; the operator carries it out
once and records the id in ``status.handledCommand``. Spec never changes, so Argo CD
and Flux see no drift, and ``kubectl apply`` of the manifest cannot undo a command.
Installed as the executable ``kubectl-modelrollout``, which kubectl finds on PATH.
"""

from __future__ import annotations

import getpass
import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import click
from pydantic import ValidationError

from modelrollout.kubeclient import Api, configuration
from modelrollout.operator.api.v1alpha1 import BLUE_GREEN_STAGES, SHADOW_STAGES
from modelrollout.operator.spec import Step
from modelrollout.operator.status import status_from_doc
from modelrollout.serving.contract.resource import KIND


def _connect(kubeconfig: Path | None) -> Api:
    return Api(configuration(kubeconfig))


def _common(fn):
    fn = click.argument("name")(fn)
    fn = click.option("-n", "--namespace", default="default", show_default=True)(fn)
    fn = click.option("--kubeconfig", type=click.Path(path_type=Path, dir_okay=False), default=None,
                      envvar="KUBECONFIG",
                      help="Default: $KUBECONFIG, in-cluster config, ~/.kube/config.")(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Watch and steer ModelDeployment rollouts (modelrollout.io)."""


@main.command()
@_common
@click.option("-w", "--watch", is_flag=True, help="Print again whenever the rollout changes.")
@click.option("--timeout", "timeout_seconds", type=float, default=None,
              help="With --watch: stop after this many seconds.")
def status(name: str, namespace: str, kubeconfig: Path | None, watch: bool,
           timeout_seconds: float | None) -> None:
    """Phase, revisions, traffic, the current step and the last analysis of a rollout."""
    api = _connect(kubeconfig)
    shown = None
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    while True:
        body = _get(api, namespace, name)
        text = describe(body)
        if text != shown:
            if shown is not None:
                click.echo("")
            click.echo(text)
            shown = text
        if not watch or (deadline is not None and time.monotonic() >= deadline):
            return
        time.sleep(1.0)


def _command(action: str):
    def run(name: str, namespace: str, kubeconfig: Path | None, wait_seconds: float) -> None:
        api = _connect(kubeconfig)
        _get(api, namespace, name)  # exists, or a clear error
        command_id = uuid.uuid4().hex[:16]
        command = {"action": action, "id": command_id,
                   "requestedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "requestedBy": _who()}
        api.merge_patch(KIND, namespace, name, {"status": {"command": command}}, "status")
        if wait_seconds <= 0:
            click.echo(f"{action} requested for {namespace}/{name} (id {command_id})")
            return
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            body = _get(api, namespace, name)
            if (body.get("status") or {}).get("handledCommand") == command_id:
                click.echo(f"{action}: done")
                click.echo(describe(body))
                return
            time.sleep(0.25)
        raise click.ClickException(f"the operator has not carried out '{action}' within {wait_seconds:g}s; "
                                   "is it running? (the request stays in status.command)")
    return run


def _register(action: str, help_text: str, extra=None) -> None:
    def command(name, namespace, kubeconfig, wait_seconds, full=False):
        _command("promote-full" if full else action)(name, namespace, kubeconfig, wait_seconds)

    command.__doc__ = help_text
    command = click.option("--wait", "wait_seconds", type=float, default=30.0, show_default=True,
                           help="Wait this long for the operator to carry it out (0: do not wait).")(command)
    command = _common(command)
    if extra is not None:
        command = extra(command)
    main.command(action)(command)


_register("promote", "Finish the current step now (pause, analysis), or with --full go straight to 100%.",
          click.option("--full", is_flag=True, help="Skip every remaining step and promote the candidate."))
_register("abort", "Send all traffic back to stable and scale the candidate down.")
_register("pause", "Hold the rollout at its current traffic until resumed.")
_register("resume", "Go on after a pause (by a person, a pause step, or an inconclusive analysis).")
_register("retry", "Start an aborted rollout of the same spec again.")
_register("recover", "Send traffic back from the fallback to the guarded revision, after the guard fired.")


def describe(body: dict) -> str:
    metadata = body.get("metadata") or {}
    status = status_from_doc(body.get("status") or {})
    strategy = (body.get("spec") or {}).get("strategy") or {}
    kind = status.strategy or next(iter(strategy), "?")
    lines = [
        f"Name:       {metadata.get('namespace')}/{metadata.get('name')}",
        f"Strategy:   {kind}",
        f"Phase:      {status.phase or '-'}" + (f" ({status.reason})" if status.reason else ""),
        f"Message:    {status.message or '-'}",
        f"Stable:     {status.stable_revision or '-'} ({status.stable_version or '?'})",
        f"Candidate:  {status.candidate_revision or '-'}"
        + (f" ({status.candidate_version or '?'})" if status.candidate_revision else ""),
        f"Traffic:    stable {status.traffic.stable}%, candidate {status.traffic.candidate}%"
        + (f", mirrored {status.traffic.mirror}%" if status.traffic.mirror else ""),
    ]
    split = status.replica_routing
    if split is not None:  # replicas routing: the weight is approximated by pod counts
        lines.append(f"Pods:       {split.candidate_endpoints} candidate and {split.stable_endpoints} stable "
                     f"behind the Service = {split.candidate_weight}% candidate")
    if status.candidate_revision:
        lines.append(f"Step:       {_step_line(kind, strategy.get(kind) or {}, status.current_step)}")
    preview = status.preview
    if preview is not None and status.candidate_revision:
        ways = [f"header '{preview.header}'"] if preview.header else []
        ways += [f"Service {preview.service}"] if preview.service else []
        lines.append(f"Preview:    {' or '.join(ways)}")
    blue_green = status.blue_green
    if blue_green is not None:
        active = f"Active:     {blue_green.active_revision or '-'}"
        if blue_green.preview_revision:
            active += f", preview {blue_green.preview_revision}"
        if blue_green.switched_at:
            active += f", switched at {blue_green.switched_at}"
        lines.append(active)
        if blue_green.scale_down_at:
            lines.append(f"Keep warm:  previous revision until {blue_green.scale_down_at}")
    shadow = status.shadow
    if shadow is not None and status.candidate_revision:
        line = f"Shadow:     {shadow.mirror_percent}% mirrored, {shadow.comparisons} compared"
        lines.append(line + ("" if shadow.agreement is None else f", agreement {shadow.agreement:.4g}"))
    for measurement in status.analysis[-5:]:
        value = "no data" if measurement.value is None else f"{measurement.value:g}"
        lines.append(f"Analysis:   {measurement.metric} = {value}: {measurement.phase} ({measurement.at})")
    guard, fallback = status.guard, status.fallback
    if guard is not None:
        watch = f"Guard:      {guard.state} {guard.revision} since {guard.since}"
        watch += f" until {guard.until}" if guard.until else " (no end)"
        lines.append(watch + (f"; fired at {guard.fired_at}: {guard.trigger}" if guard.fired_at else ""))
        for measurement in guard.analysis[-3:]:
            value = "no data" if measurement.value is None else f"{measurement.value:g}"
            lines.append(f"Guarded:    {measurement.metric} = {value}: {measurement.phase} "
                         f"({measurement.at})")
    if fallback is not None:
        state = f"SERVING since {fallback.since}" if fallback.active else "standing by"
        ready = f"{fallback.ready_replicas} ready" + (f", {fallback.problem}" if fallback.problem else "")
        lines.append(f"Fallback:   {fallback.revision} ({fallback.version or '?'}, {fallback.kind}) {state}; "
                     f"{ready}")
    if status.aborted_revision:
        lines.append(f"Aborted:    {status.aborted_revision}: {status.abort_reason}")
    for entry in status.history[-3:]:
        why = f" ({entry.reason})" if entry.reason and entry.reason != entry.result else ""
        by = f" by {entry.by}" if entry.by else ""
        lines.append(f"History:    {entry.revision} ({entry.model_version}) {entry.result}{why}{by} "
                     f"at {entry.at}")
    return "\n".join(lines)


# The stages of the strategies that have them, as their status records name them.
_STAGES = {"blueGreen": BLUE_GREEN_STAGES, "shadow": SHADOW_STAGES}


def _step_line(kind: str, strategy: dict, current: int) -> str:
    if kind in _STAGES:
        stages = _STAGES[kind]
        words = re.sub(r"(?<!^)([A-Z])", r" \1", stages[current]).lower() if current < len(stages) else ""
        return f"{current + 1}/{len(stages)} {words}".rstrip()
    steps = strategy.get("steps") or []
    step = steps[current] if current < len(steps) else None
    return f"{current + 1}/{len(steps)}" + (f" {_step_text(step)}" if step else " (all done)")


def _step_text(doc: dict) -> str:
    try:
        step = Step.model_validate(doc)
    except ValidationError:
        return "(not a valid step)"
    if step.set_weight is not None:
        return f"setWeight {step.set_weight}"
    if step.set_mirror is not None:
        return f"setMirror {step.set_mirror.percent}%"
    if step.pause is not None:
        duration = (doc.get("pause") or {}).get("duration")  # as the user wrote it
        return f"pause {duration or 'until resumed'}"
    return f"analysis {', '.join(step.analysis.metrics)}"


def _get(api: Api, namespace: str, name: str) -> dict:
    body = api.get(KIND, namespace, name)
    if body is None:
        raise click.ClickException(f"ModelDeployment {namespace}/{name} not found")
    return body


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
