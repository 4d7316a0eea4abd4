"""The one command line: `modelrollout <command>`.

Every option can also come from an environment variable named after it:
``--model-uri`` is ``MODELROLLOUT_MODEL_URI`` (handy in a pod template).
"""

from __future__ import annotations

import os
import shlex
import tempfile
from pathlib import Path

import click

ENV_PREFIX = "MODELROLLOUT_"


def option(*flags: str, **kwargs):
    """click.option whose environment variable is derived from the long flag."""
    long_flag = next(f for f in flags if f.startswith("--"))
    name = long_flag[2:].split("/")[0].replace("-", "_").upper()
    return click.option(*flags, envvar=ENV_PREFIX + name, show_envvar=True, show_default=True, **kwargs)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@option("--log-level", default="INFO", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]))
def main(log_level: str) -> None:
    """modelrollout: progressive delivery for ONNX models."""
    from . import logs

    logs.configure(log_level)


@main.command()
@option("--model-uri", required=True, help="Model file or folder: a path, file://, or http(s)://.")
@option("--sha256", default=None, help="Expected sha256 of the .onnx file; checked before loading.")
@option("--model-name", required=True, help="Name in /v2/models/{name}.")
@option("--model-version", default="1", help="Version reported and accepted in /versions/{v}.")
@option("--revision", default="", help="Rollout revision this server belongs to (the operator sets it): "
        "the revision label of every metric.")
@option("--host", default="127.0.0.1", help="Address to listen on (0.0.0.0 in a pod).")
@option("--port", default=8080, type=int)
@option("--max-batch-size", default=0, type=click.IntRange(min=0),
        help="Dynamic batching: most rows per run; 0 turns batching off.")
@option("--max-queue-delay-us", default=500, type=click.IntRange(min=0),
        help="Dynamic batching: longest wait of the oldest request for more rows.")
@option("--max-queue-size", default=256, type=click.IntRange(min=1),
        help="Requests allowed to wait; beyond it the server answers 503 with Retry-After.")
@option("--workers", default=1, type=click.IntRange(min=1), help="Inference runs in flight at once.")
@option("--intra-op-threads", default=0, type=click.IntRange(min=0),
        help="onnxruntime intra-op threads; 0 sizes them from the container's CPU limit.")
@option("--inter-op-threads", default=1, type=click.IntRange(min=1))
@option("--execution-provider", default="cpu", type=click.Choice(["cpu", "cuda"]),
        help="cuda needs onnxruntime-gpu.")
@option("--max-body-bytes", default=16 * 1024 * 1024, type=click.IntRange(min=1),
        help="Largest request body (after decompression); larger ones get 413.")
@option("--allow-nonfinite/--reject-nonfinite", default=False,
        help="Accept NaN and Infinity in float inputs (rejected with 400 by default).")
@option("--cache-dir", default=os.path.join(tempfile.gettempdir(), "modelrollout-models"),
        type=click.Path(path_type=Path), help="Where downloaded models are kept.")
@option("--download-timeout-seconds", default=30.0, type=float)
@option("--download-retries", default=3, type=click.IntRange(min=0))
@option("--prediction-log", default=None,
        help="Write sampled predictions as JSON lines to this file ('-' for stdout).")
@option("--prediction-log-sample-rate", default=1.0, type=click.FloatRange(0, 1))
@option("--drain-seconds", default=0.0, type=click.FloatRange(min=0),
        help="After SIGTERM, stay up but unready this long before closing the listener.")
@option("--grace-seconds", default=30.0, type=click.FloatRange(min=0),
        help="After the listener closes, how long in-flight requests may take.")
@option("--access-log/--no-access-log", default=False, help="Log every inference request.")
@option("--drift-window-rows", default=1000, type=click.IntRange(min=10),
        help="Input drift (with a profile.json beside the model): PSI and KS over the last this many rows.")
@option("--feedback-store-size", default=50_000, type=click.IntRange(min=0),
        help="Predicted rows kept for feedback (POST .../feedback); the oldest go first. 0: no feedback.")
@option("--feedback-ttl-seconds", default=3600.0, type=click.FloatRange(min=0, min_open=True),
        help="How long a prediction takes its label.")
def serve(**kwargs) -> None:
    """Serve one ONNX model over the Open Inference Protocol (V2)."""
    from modelrollout.serving.server.main import serve as run_server
    from modelrollout.serving.server.settings import ServerSettings

    run_server(ServerSettings(**kwargs))


@main.command()
@option("--routes", default=None, type=click.Path(path_type=Path, dir_okay=False),
        help="Route file (YAML or JSON), followed as it changes. See docs/gateway.md.")
@option("--kubernetes/--no-kubernetes", default=False,
        help="Take routes from ModelDeployment status and EndpointSlices in the Kubernetes API.")
@option("--namespace", "namespaces", multiple=True,
        help="With --kubernetes: namespace to watch (repeatable); none given: all namespaces.")
@option("--kubeconfig", default=None, help="With --kubernetes: kubeconfig file (default: in-cluster).")
@option("--host", default="127.0.0.1", help="Address to listen on (0.0.0.0 in a pod).")
@option("--port", default=8000, type=int)
@option("--load-balancing", default="least-outstanding",
        type=click.Choice(["least-outstanding", "round-robin"]))
@option("--upstream-timeout-seconds", default=30.0, type=click.FloatRange(min=0, min_open=True),
        help="An upstream that takes longer is answered 504.")
@option("--eject-after-failures", default=3, type=click.IntRange(min=1),
        help="Consecutive failures that take an endpoint out of rotation.")
@option("--ejection-seconds", default=10.0, type=click.FloatRange(min=0))
@option("--max-body-bytes", default=16 * 1024 * 1024, type=click.IntRange(min=1),
        help="Largest request body; larger ones get 413.")
@option("--mirror-queue-size", default=256, type=click.IntRange(min=1),
        help="Mirrored copies waiting for the shadow; beyond it copies are dropped and counted.")
@option("--mirror-concurrency", default=8, type=click.IntRange(min=1),
        help="Mirrored requests in flight to shadows at once.")
@option("--shadow-atol", default=1e-5, type=click.FloatRange(min=0),
        help="Shadow comparison: absolute tolerance per output value.")
@option("--shadow-rtol", default=1e-3, type=click.FloatRange(min=0),
        help="Shadow comparison: relative tolerance per output value.")
@option("--feedback-ids", default=100_000, type=click.IntRange(min=0),
        help="Request ids remembered with the endpoint that answered them, so feedback reaches it; "
             "0: none (feedback then needs the x-modelrollout-revision header).")
@option("--feedback-ttl-seconds", default=3600.0, type=click.FloatRange(min=0, min_open=True),
        help="How long a request id is remembered for feedback.")
@option("--drain-seconds", default=0.0, type=click.FloatRange(min=0),
        help="After SIGTERM, stay up but unready this long before closing the listener.")
@option("--grace-seconds", default=30.0, type=click.FloatRange(min=0),
        help="After the listener closes, how long in-flight requests may take.")
def gateway(**kwargs) -> None:
    """Route /v2/models/{name}/... between model revisions: weights, sticky users, header
    rules, and shadow mirroring with per-request output comparison."""
    from modelrollout.serving.gateway.main import run
    from modelrollout.serving.gateway.settings import GatewaySettings

    if (kwargs["routes"] is None) == (not kwargs["kubernetes"]):
        raise click.UsageError("give exactly one route source: --routes FILE or --kubernetes")
    kwargs["namespaces"] = tuple(kwargs["namespaces"])
    run(GatewaySettings(**kwargs))


@main.command()
@option("--namespace", "namespaces", multiple=True,
        help="Namespace whose ModelDeployments to manage (repeatable); none given: the whole cluster.")
@option("--kubeconfig", default=None, type=click.Path(path_type=Path, dir_okay=False),
        help="kubeconfig file (default: in-cluster config, else ~/.kube/config).")
@option("--tick-seconds", default=2.0, type=click.FloatRange(min=0.1),
        help="How often each ModelDeployment is reconciled (also at once on every change).")
@option("--metrics-host", default="127.0.0.1", help="Address of the metrics and liveness endpoints "
        "(0.0.0.0 in a pod).")
@option("--metrics-port", default=9180, type=int, help="Prometheus metrics at /metrics.")
@option("--liveness-port", default=8081, type=int, help="kopf's liveness probe at /healthz.")
@option("--peering", default=None,
        help="kopf peering name, to run several replicas of which one is active (see docs/operator.md).")
@option("--priority", default=0, type=int, help="With --peering: the highest priority replica is active.")
def operator(**kwargs) -> None:
    """Reconcile ModelDeployments: canary rollouts gated by health checks and Prometheus."""
    from modelrollout.operator.main import OperatorSettings, run

    kwargs["namespaces"] = tuple(kwargs["namespaces"])
    run(OperatorSettings(**kwargs))


@main.command()
@option("--folder", default=Path("modelrollout-demo"),
        type=click.Path(path_type=Path, file_okay=False, resolve_path=True),
        help="Where the models, the cluster's logs, the chart and the summary go.")
def demo(folder: Path) -> None:
    """Roll a model v1 -> v2 (promoted) and v2 -> v3 (broken: rolled back by itself) on
    this machine, no cluster needed; writes a chart and a summary into FOLDER."""
    from modelrollout.demo import run

    run(folder)


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
