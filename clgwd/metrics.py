"""Prometheus metrics for ``GET /metrics``.

One ``CollectorRegistry`` per daemon (never the global default, so tests and the demo's
two daemons do not share counters). Components create their counters through
``Metrics``; component states and uptime are collected at scrape time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from clgwd import __version__
from clgwd.component import ComponentState, ComponentStatus

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
StatusSource = Callable[[], Mapping[str, ComponentStatus]]


class _DaemonCollector(Collector):
    def __init__(self, statuses: StatusSource, started_at: float) -> None:
        self._statuses = statuses
        self._started_at = started_at

    def collect(self) -> Iterator[Metric]:
        yield InfoMetricFamily("clgwd_build", "clgwd build information",
                               value={"version": __version__})
        yield GaugeMetricFamily("clgwd_uptime_seconds", "Seconds since the daemon started",
                                value=time.monotonic() - self._started_at)
        states = GaugeMetricFamily(
            "clgwd_component_state", "1 for the state each component is in",
            labels=["component", "state"])
        for name, status in self._statuses().items():
            for state in ComponentState:
                states.add_metric([name, state.value], 1.0 if status.state == state else 0.0)
        yield states


class Metrics:
    """The daemon's registry plus factories for component metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)

    def bind_status(self, statuses: StatusSource) -> None:
        self.registry.register(_DaemonCollector(statuses, time.monotonic()))

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(name, doc, labelnames=labels, registry=self.registry)

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        return Gauge(name, doc, labelnames=labels, registry=self.registry)

    def histogram(self, name: str, doc: str, labels: Sequence[str] = (),
                  buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS) -> Histogram:
        return Histogram(name, doc, labelnames=labels, buckets=buckets,
                         registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
