"""The one command line: `modelrollout <command>`.

Every option can also come from an environment variable named after it:
``--model-uri`` is ``MODELROLLOUT_MODEL_URI`` (handy in a pod template).
"""

from __future__ import annotations

import shlex
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .options import SettingsCommand, option

if TYPE_CHECKING:
    from modelrollout.operator.main import OperatorSettings
    from modelrollout.serving.gateway.settings import GatewaySettings
    from modelrollout.serving.server.settings import ServerSettings


def _print_version(context: click.Context, _param, value: bool) -> None:
    if value and not context.resilient_parsing:
        from .build_info import version

        click.echo(f"modelrollout {version()}")
        context.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Print the installed version and exit.")
@option("--log-level", default="INFO", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]))
def main(log_level: str) -> None:
    """modelrollout: progressive delivery for ONNX models."""
    from . import logs

    logs.configure(log_level)


# The options of serve, gateway and operator are their settings classes' fields (options.py).
@main.command(cls=SettingsCommand, settings="modelrollout.serving.server.settings:ServerSettings")
def serve(settings: ServerSettings) -> None:
    """Serve one ONNX model over the Open Inference Protocol (V2)."""
    from modelrollout.serving.server.main import serve as run_server

    run_server(settings)


@main.command(cls=SettingsCommand, settings="modelrollout.serving.gateway.settings:GatewaySettings")
def gateway(settings: GatewaySettings) -> None:
    """Route /v2/models/{name}/... between model revisions: weights, sticky users, header
    rules, and shadow mirroring with per-request output comparison."""
    from modelrollout.serving.gateway.main import run

    if (settings.routes is None) == (not settings.kubernetes):
        raise click.UsageError("give exactly one route source: --routes FILE or --kubernetes")
    run(settings)


@main.command(cls=SettingsCommand, settings="modelrollout.operator.main:OperatorSettings")
def operator(settings: OperatorSettings) -> None:
    """Reconcile ModelDeployments: canary rollouts gated by health checks and Prometheus."""
    from modelrollout.operator.main import run

    run(settings)


@main.command()
@option("--folder", default=Path("modelrollout-demo"),
        type=click.Path(path_type=Path, file_okay=False, resolve_path=True),
        help="Where the models, the cluster's logs, the chart and the summary go.")
@option("--strategy", default=None, type=click.Choice(["canary", "blue-green", "shadow", "guard"]),
        help="Run one act only, from 1.0.0 (default: the three strategies, then the guard after the "
        "rollout, one after the other).")
def demo(folder: Path, strategy: str | None) -> None:
    """Shadow, canary and blue-green rollouts on this machine, no cluster needed: a shadow
    that agrees is promoted and one that disagrees is caught before any client sees it; a
    canary is promoted and a broken model rolled back by itself; a blue-green switch keeps
    the old revision warm; after the rollout, the guard falls back to a simpler model when
    the inputs drift. Writes a chart and a summary into FOLDER."""
    from modelrollout.demo import run

    run(folder, strategy)


@main.command()
@option("--namespace", "namespaces", multiple=True,
        help="Namespace whose ModelDeployments the operator and gateway serve (repeatable): "
        "RBAC in those namespaces only. None given: every namespace.")
@click.option("--cluster-wide", is_flag=True,
              help="Serve every namespace, with cluster-wide RBAC: the default without --namespace "
              "(and over a MODELROLLOUT_NAMESPACE of the environment).")
@click.pass_context
def manifests(context: click.Context, namespaces: tuple[str, ...], cluster_wide: bool) -> None:
    """Print the CRD, the RBAC and the operator's and gateway's Deployments, for
    `modelrollout manifests | kubectl apply -f -` (the objects of manifests/ in the repository)."""
    from .install_manifests import install_documents, render

    if cluster_wide and namespaces:
        if context.get_parameter_source("namespaces") != click.core.ParameterSource.ENVIRONMENT:
            raise click.UsageError("--cluster-wide and --namespace exclude each other")
        namespaces = ()  # asked for on the command line, it wins over the environment
    try:
        documents = install_documents(tuple(namespaces))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--namespace") from None
    click.echo(render(documents), nl=False)


@main.command()
@option("--folder", default=Path("modelrollout-cluster"),
        type=click.Path(path_type=Path, file_okay=False, resolve_path=True),
        help="Where the models, the example manifests, the kubeconfig and the logs go.")
@option("--kubeconfig", default=None, type=click.Path(path_type=Path, dir_okay=False, resolve_path=True),
        help="Where to write the kubeconfig (default: FOLDER/kubeconfig). An existing file not "
        "written by this command is never overwritten.")
def cluster(folder: Path, kubeconfig: Path | None) -> None:
    """Run the whole system on this machine for the real kubectl, until Ctrl-C.

    An emulated Kubernetes API server (kmock, made honest for kubectl: short names, printer
    columns, OpenAPI, CRD schema validation, dry runs, selectors, watches), a kubelet stand-in
    running `modelrollout serve` processes, Prometheus, the gateway and the operator, watching
    every namespace. It serves three versions of an example model over HTTP on loopback and
    writes ready-to-apply example ModelDeployments into FOLDER/examples.

    \b
    Not emulated (see docs/harness.md): admission webhooks, CEL validation rules
    (x-kubernetes-validations; the operator still rejects such a spec in its InvalidSpec
    condition), defaulting and pruning, RBAC and authentication, server-side apply,
    kubectl scale/logs/exec/port-forward (pod logs are files under FOLDER/cluster),
    containers (images are ignored; `modelrollout serve` runs here), kube-proxy, ClusterIPs
    and DNS, liveness probes, foreground deletion, and Deployments not made by the operator
    (stored, not run).
    """
    from .local_cluster import run

    run(folder, kubeconfig, tick_seconds=1.0, say=lambda text: click.echo(text, err=False))


@main.command()
@click.option("--model", "model", required=True, type=click.Path(path_type=Path, exists=True),
              help="The model: a .onnx file or a model folder (model.onnx, metadata.json, labels.txt).")
@click.option("--data", required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Reference sample, one row per example: CSV (header row unless all numbers) or .npy.")
@click.option("--labels", default=None, type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="True labels of the sample's rows (one column, CSV or .npy): reference accuracy or "
                   "error, and the golden set's expected values.")
@click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Where to write the profile (as profile.json beside model.onnx, the server uses it).")
@click.option("--golden-set", default=None, type=click.Path(path_type=Path, dir_okay=False),
              help="Also write a golden set of labelled examples here (golden.json beside model.onnx).")
@click.option("--golden-size", default=100, show_default=True, type=click.IntRange(min=1),
              help="Examples in the golden set (complete rows, drawn at random).")
@click.option("--categorical", multiple=True, help="Treat this numeric feature as categorical (repeatable).")
@click.option("--bins", default=10, show_default=True, type=click.IntRange(min=2, max=100),
              help="Quantile bins per numeric feature (PSI).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the golden set's draw.")
def profile(model: Path, data: Path, labels: Path | None, out: Path, golden_set: Path | None,
            golden_size: int, categorical: tuple[str, ...], bins: int, seed: int) -> None:
    """Build a model's reference profile (input features, prediction distribution) from a
    sample, and optionally a golden set. See docs/gates.md."""
    import orjson

    from modelrollout.serving.server import profiling
    from modelrollout.serving.server.profile import to_doc

    try:
        result = profiling.build(model, data, labels, categorical, bins)
        golden = profiling.golden_set(result, golden_size, seed) if golden_set is not None else None
    except profiling.ProfileError as exc:
        raise click.ClickException(str(exc)) from None
    out.write_bytes(orjson.dumps(to_doc(result.profile), option=orjson.OPT_INDENT_2) + b"\n")
    features = result.profile.features
    click.echo(f"wrote {out}: {len(features)} features ({sum(f.kind == 'categorical' for f in features)} "
               f"categorical) from {result.profile.rows} rows; prediction: {result.ways[0].kind} "
               f"from output '{result.ways[0].output}'")
    if result.profile.reference is not None:
        click.echo(f"reference on the sample: {result.profile.reference}")
    if golden is not None:
        golden_set.write_bytes(orjson.dumps(golden, option=orjson.OPT_INDENT_2) + b"\n")
        click.echo(f"wrote {golden_set}: {len(golden['examples'])} examples; reference {golden['reference']}")


@main.command("example-model")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--seed", default=0, type=int, show_default=True)
def example_model(folder: Path, seed: int) -> None:
    """Build the example 4-feature, 3-class model into FOLDER."""
    from modelrollout.serving.examples import write_iris_example

    write_iris_example(folder, seed=seed)
    click.echo(f"wrote {folder}/model.onnx")


@main.command()
@option("--port", default=8080, type=int)
def quickstart(port: int) -> None:
    """Build the example model and serve it on 127.0.0.1:PORT, with a sample curl."""
    from modelrollout.serving.examples import write_iris_example

    folder = write_iris_example(Path(tempfile.mkdtemp(prefix="modelrollout-quickstart-")))
    body = (
        '{"id": "demo-1", "inputs": [{"name": "input", "shape": [1, 4], '
        '"datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}'
    )
    click.echo(
        "\nServing the example model 'iris'. In another terminal:\n\n"
        f"  curl -s localhost:{port}/v2/models/iris\n"
        f"  curl -s localhost:{port}/v2/models/iris/infer -d {shlex.quote(body)}\n"
        f"  curl -s localhost:{port}/metrics | grep modelrollout_server_requests\n\n"
        "Ctrl-C stops it.\n",
        err=True,
    )
    from modelrollout.serving.server.main import serve as run_server
    from modelrollout.serving.server.settings import ServerSettings

    run_server(ServerSettings(model_uri=str(folder), model_name="iris", model_version="1", port=port))
