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

from modelrollout.serving.http_limits import HttpLimits
from modelrollout.serving.server.download_policy import DownloadPolicy

ENV_PREFIX = "MODELROLLOUT_"
_HTTP = HttpLimits()  # the defaults of both HTTP front ends
_POSITIVE_SECONDS = click.FloatRange(min=0, min_open=True)
_DOWNLOAD = DownloadPolicy()  # model downloads of `modelrollout serve`


def option(*flags: str, **kwargs):
    """click.option whose environment variable is derived from the long flag."""
    long_flag = next(f for f in flags if f.startswith("--"))
    name = long_flag[2:].split("/")[0].replace("-", "_").upper()
    return click.option(*flags, envvar=ENV_PREFIX + name, show_envvar=True, show_default=True, **kwargs)


def _print_version(context: click.Context, _param, value: bool) -> None:
    if value and not context.resilient_parsing:
        from .build_info import version

        click.echo(f"modelrollout {version()}")
        context.exit()


def http_limit_options(command):
    """The limits both HTTP front ends put on what a client sends (serving/http_limits.py)."""
    for decorate in reversed((
        option("--max-header-line-bytes", default=_HTTP.max_line_bytes, type=click.IntRange(min=64),
               help="Longest request line (else 414) or header line (else 431); nginx: 8k."),
        option("--max-header-bytes", default=_HTTP.max_head_bytes, type=click.IntRange(min=64),
               help="Longest request line plus headers, else 431; nginx: 4 x 8k."),
        option("--max-headers", default=_HTTP.max_headers, type=click.IntRange(min=1),
               help="Most header lines in a request, else 431."),
        option("--header-timeout-seconds", default=_HTTP.header_timeout_seconds, type=_POSITIVE_SECONDS,
               help="Time for a request's line and headers, from their first byte, else 408."),
        option("--body-timeout-seconds", default=_HTTP.body_timeout_seconds, type=_POSITIVE_SECONDS,
               help="Time for a whole request body, from the end of its headers, else 408."),
    )):
        command = decorate(command)
    return command


_HTTP_FLAGS = {"max_header_line_bytes": "max_line_bytes", "max_header_bytes": "max_head_bytes",
               "max_headers": "max_headers", "header_timeout_seconds": "header_timeout_seconds",
               "body_timeout_seconds": "body_timeout_seconds"}
_DOWNLOAD_FLAGS = {"download_timeout_seconds": "read_timeout_seconds",
                   "download_connect_timeout_seconds": "connect_timeout_seconds",
                   "download_deadline_seconds": "deadline_seconds", "download_retries": "retries",
                   "max_model_bytes": "max_bytes", "allow_http_models": "allow_http"}


def settings_of(settings_class, kwargs: dict):
    """Settings from the command line; what they refuse is a usage error."""
    try:
        if any(name in kwargs for name in _HTTP_FLAGS):
            kwargs["http"] = HttpLimits(**{field: kwargs.pop(name) for name, field in _HTTP_FLAGS.items()})
        if any(name in kwargs for name in _DOWNLOAD_FLAGS):
            kwargs["download"] = DownloadPolicy(**{field: kwargs.pop(name)
                                                   for name, field in _DOWNLOAD_FLAGS.items()})
        return settings_class(**kwargs)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Print the installed version and exit.")
@option("--log-level", default="INFO", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]))
def main(log_level: str) -> None:
    """modelrollout: progressive delivery for ONNX models."""
    from . import logs

    logs.configure(log_level)


@main.command()
@option("--model-uri", required=True, help="Model file or folder: a path, file://, or http(s)://"
        " (never a link-local or cloud-metadata address).")
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
@option("--download-timeout-seconds", default=_DOWNLOAD.read_timeout_seconds, type=_POSITIVE_SECONDS,
        help="Model download: longest wait for the next bytes (read timeout).")
@option("--download-connect-timeout-seconds", default=_DOWNLOAD.connect_timeout_seconds,
        type=_POSITIVE_SECONDS, help="Model download: longest wait for a connection.")
@option("--download-deadline-seconds", default=_DOWNLOAD.deadline_seconds, type=_POSITIVE_SECONDS,
        help="Model download: longest one attempt may take, start to end.")
@option("--download-retries", default=_DOWNLOAD.retries, type=click.IntRange(min=0))
@option("--max-model-bytes", default=_DOWNLOAD.max_bytes, type=click.IntRange(min=1),
        help="Largest model download; larger ones are refused (no retry).")
@option("--allow-http-models/--https-models-only", default=False,
        help="Download models over plain http from any host (by default http only from loopback: "
        "127.0.0.0/8, ::1, localhost).")
@option("--require-sha256/--no-require-sha256", default=False,
        help="Refuse to start without --sha256.")
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
@http_limit_options
def serve(**kwargs) -> None:
    """Serve one ONNX model over the Open Inference Protocol (V2)."""
    from modelrollout.serving.server.main import serve as run_server
    from modelrollout.serving.server.settings import ServerSettings

    run_server(settings_of(ServerSettings, kwargs))


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
@http_limit_options
def gateway(**kwargs) -> None:
    """Route /v2/models/{name}/... between model revisions: weights, sticky users, header
    rules, and shadow mirroring with per-request output comparison."""
    from modelrollout.serving.gateway.main import run
    from modelrollout.serving.gateway.settings import GatewaySettings

    if (kwargs["routes"] is None) == (not kwargs["kubernetes"]):
        raise click.UsageError("give exactly one route source: --routes FILE or --kubernetes")
    kwargs["namespaces"] = tuple(kwargs["namespaces"])
    run(settings_of(GatewaySettings, kwargs))


@main.command()
@option("--namespace", "namespaces", multiple=True,
        help="Namespace whose ModelDeployments to manage (repeatable); none given: the whole cluster.")
@option("--kubeconfig", default=None, type=click.Path(path_type=Path, dir_okay=False),
        help="kubeconfig file (default: in-cluster config, else ~/.kube/config).")
@option("--tick-seconds", default=2.0, type=click.FloatRange(min=0.1),
        help="How often a ModelDeployment with a rollout under way is reconciled (also at once on "
             "every change of it or of what it owns).")
@option("--resync-seconds", default=300.0, type=click.FloatRange(min=1),
        help="How often a settled ModelDeployment (Healthy, or Degraded with nothing pending) is "
             "reconciled when nothing changes.")
@option("--metrics-host", default="127.0.0.1", help="Address of the metrics and liveness endpoints "
        "(0.0.0.0 in a pod).")
@option("--metrics-port", default=9180, type=int, help="Prometheus metrics at /metrics.")
@option("--liveness-port", default=8081, type=int, help="kopf's liveness probe at /healthz.")
@option("--leader-elect", is_flag=True, default=False,
        help="Run as one of several replicas: only the holder of a Lease reconciles (docs/operator.md).")
@option("--lease-name", default="modelrollout-operator", help="With --leader-elect: the Lease's name.")
@option("--lease-namespace", default=None,
        help="With --leader-elect: the Lease's namespace (default: the pod's own, else modelrollout-system).")
@option("--lease-duration-seconds", default=15.0, type=click.FloatRange(min=1),
        help="With --leader-elect: a Lease not renewed this long is taken over.")
@option("--renew-deadline-seconds", default=10.0, type=click.FloatRange(min=0.5),
        help="With --leader-elect: a leader that could not renew this long stops reconciling.")
@option("--retry-seconds", default=2.0, type=click.FloatRange(min=0.1),
        help="With --leader-elect: how often the Lease is renewed or looked at.")
def operator(**kwargs) -> None:
    """Reconcile ModelDeployments: canary rollouts gated by health checks and Prometheus."""
    from modelrollout.operator.main import OperatorSettings, run

    kwargs["namespaces"] = tuple(kwargs["namespaces"])
    settings = OperatorSettings(**kwargs)
    if settings.leader_elect:
        try:
            settings.timing.check()
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
    run(settings)


@main.command()
@option("--folder", default=Path("modelrollout-demo"),
        type=click.Path(path_type=Path, file_okay=False, resolve_path=True),
        help="Where the models, the cluster's logs, the chart and the summary go.")
@option("--strategy", default=None, type=click.Choice(["canary", "blue-green", "shadow"]),
        help="Run one strategy's rollouts only (default: all three, one after the other).")
def demo(folder: Path, strategy: str | None) -> None:
    """Shadow, canary and blue-green rollouts on this machine, no cluster needed: a shadow
    that agrees is promoted and one that disagrees is caught before any client sees it; a
    canary is promoted and a broken model rolled back by itself; a blue-green switch keeps
    the old revision warm. Writes a chart and a summary into FOLDER."""
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
