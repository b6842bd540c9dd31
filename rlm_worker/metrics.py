"""Prometheus metrics of the whole fleet: what every process records, and how it is exposed.

Metrics are created on first use, not at import: a gunicorn or Celery prefork parent must first
choose the multiprocess directory (`use_multiprocess_dir`), so that every child writes its values
there and one scrape sums them. A process that never chose one (`rlm run`, `rlm serve`, tests)
keeps plain in-process metrics. Recording is a few microseconds; it never raises into the caller.
docs/metrics.md lists every metric and its labels.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # prometheus_client is imported on first use: `rlm run` may never need it
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger("rlm.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Seconds; model calls take from ~50 ms (a local model) to minutes (a long answer).
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
#: Seconds; most API routes answer in milliseconds, uploads take longer.
API_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass(frozen=True)
class _Metrics:
    executions: Counter
    subcall_seconds: Histogram
    tokens: Counter
    cost: Counter
    model_errors: Counter
    guard_trips: Counter
    live_sandboxes: Gauge
    api_seconds: Histogram


_lock = threading.Lock()
_metrics: _Metrics | None = None


def _create() -> _Metrics:
    from prometheus_client import Counter, Gauge, Histogram

    return _Metrics(
        executions=Counter(
            "rlm_executions", "Executions that ended, by final status and strategy.", ["status", "strategy"]
        ),
        subcall_seconds=Histogram(
            "rlm_subcall_duration_seconds",
            "Leaf sub-call (llm_query) latency, from start to answer, by model and by the queue that ran it.",
            ["model", "queue"],
            buckets=LATENCY_BUCKETS,
        ),
        tokens=Counter(
            "rlm_model_tokens", "Tokens of model replies, by model and direction.", ["model", "direction"]
        ),
        cost=Counter("rlm_model_cost_usd", "Cost of model replies in US dollars, by model.", ["model"]),
        model_errors=Counter(
            "rlm_model_errors",
            "Model calls that failed (after retries), by model and kind.",
            ["model", "kind"],
        ),
        guard_trips=Counter(
            "rlm_guard_trips", "Limits that stopped, refused or held back work, by guard.", ["guard"]
        ),
        live_sandboxes=Gauge("rlm_live_sandboxes", "REPL processes alive now.", multiprocess_mode="livesum"),
        api_seconds=Histogram(
            "rlm_api_request_duration_seconds",
            "API and dashboard request latency, by route rule, method and status code.",
            ["route", "method", "status"],
            buckets=API_BUCKETS,
        ),
    )


def metrics() -> _Metrics:
    global _metrics
    if _metrics is None:
        with _lock:
            if _metrics is None:
                _metrics = _create()
    return _metrics


# -- model labels ---------------------------------------------------------------------------------
#: The label of a model not among the configured names (Settings.metric_model_names).
OTHER_MODEL = "other"
_model_names: frozenset[str] | None = None


def set_model_names(names: frozenset[str] | None) -> None:
    """The model names that may be labels (None: read them from the environment's settings)."""
    global _model_names
    _model_names = names


def model_label(model: str | None) -> str:
    """`model` when it is a configured name, else `other`: a request may name any `openai/<...>`
    string, and each distinct label would be a new series (and a NUL in one breaks the format)."""
    global _model_names
    if not model:
        return "unknown"
    if _model_names is None:
        from rlm_shared.config import get_settings

        _model_names = get_settings().metric_model_names()
    return model if model in _model_names else OTHER_MODEL


# -- what the adapters record ---------------------------------------------------------------------
def execution_finished(status: str, strategy: str | None) -> None:
    metrics().executions.labels(status=status, strategy=strategy or "none").inc()


def subcall_finished(model: str | None, queue: str, seconds: float) -> None:
    metrics().subcall_seconds.labels(model=model_label(model), queue=queue).observe(max(0.0, seconds))


def model_replied(model: str, input_tokens: int, output_tokens: int, cost_usd: float) -> None:
    m, model = metrics(), model_label(model)
    m.tokens.labels(model=model, direction="input").inc(max(0, input_tokens))
    m.tokens.labels(model=model, direction="output").inc(max(0, output_tokens))
    m.cost.labels(model=model).inc(max(0.0, cost_usd))


def model_failed(model: str, kind: str) -> None:
    metrics().model_errors.labels(model=model_label(model), kind=kind).inc()


def guard_tripped(guard: str) -> None:
    metrics().guard_trips.labels(guard=guard).inc()


def sandbox_started() -> None:
    metrics().live_sandboxes.inc()


def sandbox_ended() -> None:
    metrics().live_sandboxes.dec()


def api_request(route: str, method: str, status: int, seconds: float) -> None:
    metrics().api_seconds.labels(route=route, method=method, status=str(status)).observe(seconds)


_PROVIDER_ERROR = re.compile(r"^((?:[A-Za-z_][A-Za-z0-9_]*)?(?:Error|Exception|Timeout|Exceeded)):")


def error_kind(message: str, transient: bool) -> str:
    """A bounded label for a failed model call: the provider's exception class (`RateLimitError`,
    `Timeout`, ...) when the message names one, else `refused` (the allow-list, a missing key) or
    `other`."""
    match = _PROVIDER_ERROR.match(message)
    if match:
        return match.group(1)
    return "other" if transient else "refused"


_SANDBOX_LIMITS = (
    ("of REPL CPU time", "execution_cpu"),  # the execution's CPU seconds over all its cells
    ("s wall-clock", "cell_wall_clock"),
    ("s CPU", "cell_cpu"),
    ("MiB memory", "cell_memory"),
)


def sandbox_limit_guard(limit_hit: str) -> str:
    """The guard a REPL's `limit_hit` text stands for (the texts are sentences, not labels)."""
    for needle, guard in _SANDBOX_LIMITS:
        if needle in limit_hit:
            return guard
    return "repl_killed"


# -- process modes --------------------------------------------------------------------------------
def use_multiprocess_dir() -> str:
    """Put this process and the children it forks in multiprocess mode; returns the directory.

    Called by a gunicorn master or a Celery worker's main process before any metric exists. An
    operator's PROMETHEUS_MULTIPROC_DIR is used as it is; otherwise a fresh private directory is
    made (and removed at exit), so two workers on one host never mix their files.
    """
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        path = tempfile.mkdtemp(prefix="rlm-metrics-")
        os.environ[MULTIPROC_ENV] = path
        _remove_at_exit(path)
    os.makedirs(path, exist_ok=True)
    from prometheus_client import values

    values.ValueClass = values.get_value_class()  # in case prometheus_client was imported earlier
    _forget_in_process_metrics()
    return path


def _forget_in_process_metrics() -> None:
    """Metrics made before the switch keep their values in memory: make them again, on files."""
    global _metrics
    with _lock:
        if _metrics is None:
            return
        from prometheus_client import REGISTRY

        for metric in vars(_metrics).values():
            REGISTRY.unregister(metric)
        _metrics = None


def _remove_at_exit(path: str) -> None:
    import atexit

    pid = os.getpid()
    atexit.register(lambda: os.getpid() == pid and shutil.rmtree(path, ignore_errors=True))


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def mark_process_dead(pid: int) -> None:
    """Drop a dead process's live gauges (its counters stay: they still count)."""
    if multiprocess():
        from prometheus_client import multiprocess as mp

        mp.mark_process_dead(pid)


class _Union:
    """Collects other registries (the default one keeps this process's in-process metrics)."""

    def __init__(self, *registries: CollectorRegistry) -> None:
        self.registries = registries

    def collect(self) -> Iterator[Any]:
        metrics()  # an idle process still shows its unlabelled metrics, at zero
        for registry in self.registries:
            yield from registry.collect()


def exposition_registry(*extra: Any) -> CollectorRegistry:
    """What one scrape shows: every process's values in multiprocess mode (summed per the
    metric's mode), else this process's, plus `extra` collectors evaluated at scrape time."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    if multiprocess():
        from prometheus_client import multiprocess as mp

        mp.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry.register(_Union(REGISTRY))
    for collector in extra:
        registry.register(collector)
    return registry


class QueueDepthCollector:
    """`rlm_queue_depth{queue}`: messages waiting in the broker's Redis lists, read at scrape time
    (kombu keeps one list per queue and priority step). Unreachable: the family has no sample."""

    def __init__(self, broker_url: str, queues: tuple[str, ...]) -> None:
        import redis

        self.queues = queues
        self.redis = redis.Redis.from_url(broker_url, socket_timeout=1.0, socket_connect_timeout=1.0)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "rlm_queue_depth",
            "Messages waiting in the broker queue (not yet taken by a worker).",
            labels=["queue"],
        )
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                for queue in self.queues:
                    for key in _priority_keys(queue):
                        pipe.llen(key)
                lengths = pipe.execute()
        except Exception as exc:  # the broker is down: the scrape still answers
            log.warning("queue depth unavailable: %s", type(exc).__name__)
        else:
            steps = len(_priority_keys(""))
            for index, queue in enumerate(self.queues):
                family.add_metric([queue], float(sum(lengths[index * steps : (index + 1) * steps])))
        yield family


def _priority_keys(queue: str) -> list[str]:
    """The Redis lists kombu's Redis transport keeps for `queue` (priority 0 is the bare name)."""
    from kombu.transport.redis import Channel

    return [f"{queue}{Channel.sep}{step}" if step else queue for step in Channel.priority_steps]
