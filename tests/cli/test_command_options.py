"""The options of `modelrollout serve`, `gateway` and `operator` are a contract: Dockerfiles,
manifests, the chart and users' scripts pass them as flags or environment variables. Their
names, environment variables, defaults and what they accept are frozen here, as they were
when the options were written out by hand in cli.py. They are built from the settings
classes (modelrollout/options.py): every default is the settings field's, and what the
command line refuses, a settings class built directly refuses too."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tempfile
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from modelrollout.cli import main

REQUIRED = "required"
CACHE_DIR = Path(tempfile.gettempdir(), "modelrollout-models")

# (flag, environment variable, value when neither is given, what it accepts)
# The HTTP limits both front ends take (serving/http_limits.py, embedded in both settings).
HTTP_LIMITS = [
    ("--max-header-line-bytes", "MODELROLLOUT_MAX_HEADER_LINE_BYTES", 8192, "int >=64"),
    ("--max-header-bytes", "MODELROLLOUT_MAX_HEADER_BYTES", 32768, "int >=64"),
    ("--max-headers", "MODELROLLOUT_MAX_HEADERS", 100, "int >=1"),
    ("--header-timeout-seconds", "MODELROLLOUT_HEADER_TIMEOUT_SECONDS", 60.0, "float >0"),
    ("--body-timeout-seconds", "MODELROLLOUT_BODY_TIMEOUT_SECONDS", 60.0, "float >0"),
]
SERVE = [
    ("--model-uri", "MODELROLLOUT_MODEL_URI", REQUIRED, "text"),
    ("--sha256", "MODELROLLOUT_SHA256", None, "text"),
    ("--model-name", "MODELROLLOUT_MODEL_NAME", REQUIRED, "text"),
    ("--model-version", "MODELROLLOUT_MODEL_VERSION", "1", "text"),
    ("--revision", "MODELROLLOUT_REVISION", "", "text"),
    ("--host", "MODELROLLOUT_HOST", "127.0.0.1", "text"),
    ("--port", "MODELROLLOUT_PORT", 8080, "int"),
    ("--max-batch-size", "MODELROLLOUT_MAX_BATCH_SIZE", 0, "int >=0"),
    ("--max-queue-delay-us", "MODELROLLOUT_MAX_QUEUE_DELAY_US", 500, "int >=0"),
    ("--max-queue-size", "MODELROLLOUT_MAX_QUEUE_SIZE", 256, "int >=1"),
    ("--workers", "MODELROLLOUT_WORKERS", 1, "int >=1"),
    ("--intra-op-threads", "MODELROLLOUT_INTRA_OP_THREADS", 0, "int >=0"),
    ("--inter-op-threads", "MODELROLLOUT_INTER_OP_THREADS", 1, "int >=1"),
    ("--execution-provider", "MODELROLLOUT_EXECUTION_PROVIDER", "cpu", "cpu|cuda"),
    ("--max-body-bytes", "MODELROLLOUT_MAX_BODY_BYTES", 16777216, "int >=1"),
    ("--allow-nonfinite/--reject-nonfinite", "MODELROLLOUT_ALLOW_NONFINITE", False, "flag"),
    ("--cache-dir", "MODELROLLOUT_CACHE_DIR", CACHE_DIR, "path"),
    ("--download-timeout-seconds", "MODELROLLOUT_DOWNLOAD_TIMEOUT_SECONDS", 30.0, "float >0"),
    ("--download-connect-timeout-seconds", "MODELROLLOUT_DOWNLOAD_CONNECT_TIMEOUT_SECONDS", 10.0, "float >0"),
    ("--download-deadline-seconds", "MODELROLLOUT_DOWNLOAD_DEADLINE_SECONDS", 1800.0, "float >0"),
    ("--download-retries", "MODELROLLOUT_DOWNLOAD_RETRIES", 3, "int >=0"),
    ("--max-model-bytes", "MODELROLLOUT_MAX_MODEL_BYTES", 2147483648, "int >=1"),
    ("--allow-http-models/--https-models-only", "MODELROLLOUT_ALLOW_HTTP_MODELS", False, "flag"),
    ("--require-sha256/--no-require-sha256", "MODELROLLOUT_REQUIRE_SHA256", False, "flag"),
    ("--prediction-log", "MODELROLLOUT_PREDICTION_LOG", None, "text"),
    ("--prediction-log-sample-rate", "MODELROLLOUT_PREDICTION_LOG_SAMPLE_RATE", 1.0, "float >=0 <=1"),
    ("--drain-seconds", "MODELROLLOUT_DRAIN_SECONDS", 0.0, "float >=0"),
    ("--grace-seconds", "MODELROLLOUT_GRACE_SECONDS", 30.0, "float >=0"),
    ("--access-log/--no-access-log", "MODELROLLOUT_ACCESS_LOG", False, "flag"),
    ("--drift-window-rows", "MODELROLLOUT_DRIFT_WINDOW_ROWS", 1000, "int >=10"),
    ("--feedback-store-size", "MODELROLLOUT_FEEDBACK_STORE_SIZE", 50000, "int >=0"),
    ("--feedback-ttl-seconds", "MODELROLLOUT_FEEDBACK_TTL_SECONDS", 3600.0, "float >0"),
    *HTTP_LIMITS,
]
GATEWAY = [
    ("--routes", "MODELROLLOUT_ROUTES", None, "file"),
    ("--kubernetes/--no-kubernetes", "MODELROLLOUT_KUBERNETES", False, "flag"),
    ("--namespace", "MODELROLLOUT_NAMESPACE", (), "text, repeatable"),
    ("--kubeconfig", "MODELROLLOUT_KUBECONFIG", None, "text"),
    ("--host", "MODELROLLOUT_HOST", "127.0.0.1", "text"),
    ("--port", "MODELROLLOUT_PORT", 8000, "int"),
    ("--load-balancing", "MODELROLLOUT_LOAD_BALANCING", "least-outstanding", "least-outstanding|round-robin"),
    ("--upstream-timeout-seconds", "MODELROLLOUT_UPSTREAM_TIMEOUT_SECONDS", 30.0, "float >0"),
    ("--eject-after-failures", "MODELROLLOUT_EJECT_AFTER_FAILURES", 3, "int >=1"),
    ("--ejection-seconds", "MODELROLLOUT_EJECTION_SECONDS", 10.0, "float >=0"),
    ("--max-body-bytes", "MODELROLLOUT_MAX_BODY_BYTES", 16777216, "int >=1"),
    ("--mirror-queue-size", "MODELROLLOUT_MIRROR_QUEUE_SIZE", 256, "int >=1"),
    ("--mirror-concurrency", "MODELROLLOUT_MIRROR_CONCURRENCY", 8, "int >=1"),
    ("--shadow-atol", "MODELROLLOUT_SHADOW_ATOL", 1e-05, "float >=0"),
    ("--shadow-rtol", "MODELROLLOUT_SHADOW_RTOL", 0.001, "float >=0"),
    ("--feedback-ids", "MODELROLLOUT_FEEDBACK_IDS", 100000, "int >=0"),
    ("--feedback-ttl-seconds", "MODELROLLOUT_FEEDBACK_TTL_SECONDS", 3600.0, "float >0"),
    ("--drain-seconds", "MODELROLLOUT_DRAIN_SECONDS", 0.0, "float >=0"),
    ("--grace-seconds", "MODELROLLOUT_GRACE_SECONDS", 30.0, "float >=0"),
    *HTTP_LIMITS,
]
OPERATOR = [
    ("--namespace", "MODELROLLOUT_NAMESPACE", (), "text, repeatable"),
    ("--kubeconfig", "MODELROLLOUT_KUBECONFIG", None, "file"),
    ("--tick-seconds", "MODELROLLOUT_TICK_SECONDS", 2.0, "float >=0.1"),
    ("--resync-seconds", "MODELROLLOUT_RESYNC_SECONDS", 300.0, "float >=1"),
    ("--api-qps", "MODELROLLOUT_API_QPS", 50.0, "float >=0.1"),
    ("--api-burst", "MODELROLLOUT_API_BURST", 100, "int >=1"),
    ("--metrics-host", "MODELROLLOUT_METRICS_HOST", "127.0.0.1", "text"),
    ("--metrics-port", "MODELROLLOUT_METRICS_PORT", 9180, "int"),
    ("--liveness-port", "MODELROLLOUT_LIVENESS_PORT", 8081, "int"),
    ("--leader-elect", "MODELROLLOUT_LEADER_ELECT", False, "flag"),
    ("--lease-name", "MODELROLLOUT_LEASE_NAME", "modelrollout-operator", "text"),
    ("--lease-namespace", "MODELROLLOUT_LEASE_NAMESPACE", None, "text"),
    ("--lease-duration-seconds", "MODELROLLOUT_LEASE_DURATION_SECONDS", 15.0, "float >=1"),
    ("--renew-deadline-seconds", "MODELROLLOUT_RENEW_DEADLINE_SECONDS", 10.0, "float >=0.5"),
    ("--retry-seconds", "MODELROLLOUT_RETRY_SECONDS", 2.0, "float >=0.1"),
]


COMMANDS = {"serve": SERVE, "gateway": GATEWAY, "operator": OPERATOR}
REQUIRED_ARGS = {"serve": ["--model-uri", "model.onnx", "--model-name", "m"], "gateway": [], "operator": []}
REQUIRED_FIELDS = {"serve": {"model_uri": "model.onnx", "model_name": "m"}, "gateway": {}, "operator": {}}
# What each command runs with its settings (replaced by a recorder here).
RUNS = {"serve": "modelrollout.serving.server.main.serve", "gateway": "modelrollout.serving.gateway.main.run",
        "operator": "modelrollout.operator.main.run"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No MODELROLLOUT_ variable of the machine running the tests may stand in for a default."""
    for name in [n for n in os.environ if n.startswith("MODELROLLOUT_")]:
        monkeypatch.delenv(name)


def flag_of(option: click.Option) -> str:
    return "/".join(["".join(option.opts), *option.secondary_opts])


def accepts(option: click.Option) -> str:
    """What an option takes, in short: "int >=1", "float >0", "cpu|cuda", "file", "flag"."""
    info = option.type.to_info_dict()
    kind = info["param_type"]
    if option.is_flag:
        return "flag"
    if kind in ("IntRange", "FloatRange"):
        bounds = []
        if info["min"] is not None:
            bounds.append((">" if info["min_open"] else ">=") + f"{info['min']:g}")
        if info["max"] is not None:
            bounds.append(("<" if info["max_open"] else "<=") + f"{info['max']:g}")
        text = ("int " if kind == "IntRange" else "float ") + " ".join(bounds)
    elif kind == "Choice":
        text = "|".join(info["choices"])
    elif kind == "Path":
        text = "path" if info["dir_okay"] else "file"
    else:
        text = {"Int": "int", "Float": "float", "String": "text"}[kind]
    return text + (", repeatable" if option.multiple else "")


def typed(value):
    """A value with its type, so that 30 and 30.0, or a str and a Path, differ."""
    return type(value).__name__, value


def table_of(name: str) -> list[tuple]:
    command = main.commands[name]
    values = command.make_context(name, list(REQUIRED_ARGS[name])).params
    return [(flag_of(option), option.envvar,
             REQUIRED if option.required else typed(values[option.name]), accepts(option))
            for option in command.params]


@pytest.mark.parametrize("name", COMMANDS)
def test_flags_environment_variables_and_defaults_are_unchanged(name):
    expected = [(flag, envvar, value if value == REQUIRED else typed(value), kind)
                for flag, envvar, value, kind in COMMANDS[name]]
    assert table_of(name) == expected


@pytest.mark.parametrize("name", COMMANDS)
def test_help_shows_every_flag_and_environment_variable(name):
    result = CliRunner().invoke(main, [name, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.split())
    for option in main.commands[name].params:
        assert option.show_default is True and option.show_envvar is True, flag_of(option)
        assert f"env var: {option.envvar}" in shown
        for flag in (*option.opts, *option.secondary_opts):
            assert flag in shown


def value_at(settings, path: tuple[str, ...]):
    for name in path:
        settings = getattr(settings, name)
    return settings


def replaced(settings, path: tuple[str, ...], value):
    """``settings`` with the field at ``path`` (through embedded settings) set to ``value``."""
    head, *rest = path
    inner = replaced(getattr(settings, head), tuple(rest), value) if rest else value
    return dataclasses.replace(settings, **{head: inner})


def defaults_of(name: str):
    return main.commands[name].settings_class(**REQUIRED_FIELDS[name])


@pytest.mark.parametrize("name", COMMANDS)
def test_every_default_shown_is_the_settings_field_default(name):
    defaults = defaults_of(name)
    for option in main.commands[name].params:
        if not option.required:
            assert option.default == value_at(defaults, option.path), flag_of(option)


@pytest.mark.parametrize("name", COMMANDS)
def test_no_flags_give_the_settings_class_defaults(name, monkeypatch):
    ran = []
    monkeypatch.setattr(RUNS[name], ran.append)
    args = [*REQUIRED_ARGS[name], *(["--routes", "routes.yaml"] if name == "gateway" else [])]
    result = CliRunner().invoke(main.commands[name], args)
    assert result.exit_code == 0, result.output
    expected = defaults_of(name)
    if name == "gateway":
        expected = dataclasses.replace(expected, routes=Path("routes.yaml"))
    assert ran == [expected]


def just_outside(option: click.Option) -> list:
    """Values next to what the option accepts, on the wrong side."""
    info = option.type.to_info_dict()
    if info["param_type"] == "Choice":
        return ["none-of-these"]
    if info["param_type"] not in ("IntRange", "FloatRange"):
        return []
    step = 1 if info["param_type"] == "IntRange" else None
    values = []
    if info["min"] is not None:
        below = info["min"] - step if step else math.nextafter(info["min"], -math.inf)
        values.append(info["min"] if info["min_open"] else below)
    if info["max"] is not None:
        values.append(info["max"] + step if step else math.nextafter(info["max"], math.inf))
    return values


@pytest.mark.parametrize("name", COMMANDS)
def test_the_settings_class_refuses_what_the_command_line_refuses(name):
    command, defaults = main.commands[name], defaults_of(name)
    checked = 0
    for option in command.params:
        for value in just_outside(option):
            with pytest.raises(click.BadParameter):
                command.make_context(name, [*REQUIRED_ARGS[name], option.opts[0], str(value)])
            with pytest.raises(ValueError, match=re.escape(option.opts[0])):
                replaced(defaults, option.path, value)
            checked += 1
    assert checked == {"serve": 25, "gateway": 18, "operator": 7}[name]  # every bound and choice


def test_leader_election_timing_that_cannot_work_is_a_usage_error(monkeypatch):
    monkeypatch.setattr(RUNS["operator"], lambda settings: pytest.fail("the operator ran"))
    result = CliRunner().invoke(main.commands["operator"], ["--leader-elect", "--retry-seconds", "12"])
    assert result.exit_code == 2
    assert "leader election needs 0 < retry < renew deadline < lease duration" in result.output
