"""The model's life in the server: fetch, verify, load, warm up, serve, drain.

Readiness is derived from ModelState, never stored on the side.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from .batching import BatchingPolicy, Scheduler
from .cpu import usable_cpus
from .download_policy import scrub
from .gates import Companions, monitor_config, read_companions
from .loading import LoadError, fetch, resolve
from .metrics import ServerMetrics
from .monitor import Monitor
from .runtime import ModelRuntime, RuntimeOptions
from .settings import ServerSettings

log = logging.getLogger("modelrollout.serve")

# A model whose run takes less than this is run on the event loop: handing it to a
# thread would cost more than the inference itself.
INLINE_THRESHOLD_SECONDS = 100e-6


@dataclass
class ModelState:
    runtime: ModelRuntime | None = None
    scheduler: Scheduler | None = None
    extra_metadata: dict = field(default_factory=dict)  # model folder metadata, sha256, labels
    companions: Companions = field(default_factory=Companions)  # profile.json, golden.json
    monitor: Monitor | None = None  # the model-aware signals (monitor.py)
    load_error: str | None = None
    draining: bool = False

    @property
    def is_ready(self) -> bool:
        return self.scheduler is not None and not self.draining

    def unready_reason(self) -> str:
        if self.draining:
            return "shutting down"
        if self.load_error:
            return f"model failed to load: {self.load_error}"
        return "model is loading"


def runtime_options(settings: ServerSettings) -> RuntimeOptions:
    return RuntimeOptions(
        intra_op_threads=settings.intra_op_threads or usable_cpus(),
        inter_op_threads=settings.inter_op_threads,
        execution_provider=settings.execution_provider,
        allow_nonfinite=settings.allow_nonfinite,
    )


async def load_model(
    settings: ServerSettings,
    state: ModelState,
    metrics: ServerMetrics,
    runtime: ModelRuntime | None = None,
) -> None:
    """Bring the model to ready, or leave the server unready with the reason logged and counted."""
    started = time.perf_counter()
    try:
        loaded = runtime or await asyncio.to_thread(_load_runtime, settings, state)
        config = monitor_config(settings, loaded, state.extra_metadata, state.extra_metadata.get("labels"),
                                state.companions)
        # Warm-up: the first runs allocate and plan; pay for them before ready.
        run_seconds = await asyncio.to_thread(_time_runs, loaded, 10)
    except LoadError as exc:
        _fail(state, metrics, settings, exc.reason, exc.message)
        return
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises many kinds
        _fail(state, metrics, settings, "load", scrub(f"{type(exc).__name__}: {exc}", settings.model_uri))
        return
    policy = BatchingPolicy(
        max_batch_size=settings.max_batch_size if loaded.is_batchable else 0,
        max_queue_delay_us=settings.max_queue_delay_us,
        max_queue_size=settings.max_queue_size,
        workers=settings.workers,
        inline=run_seconds < INLINE_THRESHOLD_SECONDS,
    )
    if settings.max_batch_size and not loaded.is_batchable:
        log.warning(
            "model has no dynamic first dimension on every input and output: batching is off",
            extra={"model": settings.model_name},
        )
    scheduler = Scheduler(loaded.run, policy, metrics.batch_observer(policy.max_batch_size))
    scheduler.start()
    state.monitor = Monitor(config, metrics.gates)
    state.monitor.start()
    if config.ways:
        state.extra_metadata["prediction"] = config.ways[0].to_doc()
    metrics.queue_depth.set_function(lambda: scheduler.queue_depth)
    state.runtime, state.scheduler = loaded, scheduler
    seconds = time.perf_counter() - started
    metrics.load_duration.set(seconds)
    metrics.set_model_info(state.extra_metadata.get("sha256", "unknown"), loaded.opset, loaded.provider)
    metrics.model_ready.set(1)
    log.info(
        "model ready",
        extra={
            "model": settings.model_name, "version": settings.model_version,
            "load_seconds": round(seconds, 3), "provider": loaded.provider,
            "intra_op_threads": loaded.options.intra_op_threads,
            "dynamic_batching": scheduler.is_batching,
            "warm_run_microseconds": round(run_seconds * 1e6, 1),
            "inline": policy.inline,
            "prediction": config.ways[0].to_doc() if config.ways else None,
            "profile_features": len(config.checks.features) if config.checks else 0,
        },
    )


def _time_runs(runtime: ModelRuntime, count: int) -> float:
    feeds = runtime.example_feeds()
    names = [spec.name for spec in runtime.outputs]
    durations = []
    for _ in range(count):
        t0 = time.perf_counter()
        runtime.run(feeds, names)
        durations.append(time.perf_counter() - t0)
    # The fastest run is the model's own cost; slower ones measure whatever else the
    # machine was doing at start-up, and would make the inline choice flip between pods.
    return min(durations[1:])


def _load_runtime(settings: ServerSettings, state: ModelState) -> ModelRuntime:
    path = fetch(settings.model_uri, settings.cache_dir, settings.download)
    files = resolve(path, settings.sha256)
    state.extra_metadata = {**files.metadata, "sha256": files.sha256}
    if files.labels:
        state.extra_metadata["labels"] = files.labels
    state.companions = read_companions(path if path.is_dir() else None)
    # The gate files' digests are part of what the server reports: a new profile or golden
    # set is a new revision of the model even when model.onnx stayed the same.
    if state.companions.profile is not None:
        state.extra_metadata["profile_sha256"] = state.companions.profile_sha256
    if state.companions.golden is not None:
        state.extra_metadata["golden_sha256"] = state.companions.golden_sha256
    return ModelRuntime(
        files.onnx_path.read_bytes(), settings.model_name, settings.model_version,
        runtime_options(settings),
    )


def _fail(state: ModelState, metrics: ServerMetrics, settings: ServerSettings,
          reason: str, message: str) -> None:
    state.load_error = message
    metrics.count_failure(reason)
    log.error(
        "model not loaded; the server stays unready",
        extra={"model": settings.model_name, "version": settings.model_version,
               "reason": reason, "error": message},
    )
