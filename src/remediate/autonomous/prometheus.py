"""Samples from Prometheus (node-exporter metrics) instead of the store, when
`prometheus.url` is configured; and Prometheus's own `predict_linear` to compare with.

    prometheus = Prometheus("http://127.0.0.1:9090", timeout=10)
    series = prometheus.series(start=now - 14 * 86400, end=now, step=300)
    prometheus.predict_linear("disk:/srv", window_seconds=86400, horizon_seconds=7 * 86400)

Several hosts' series of one mount are folded with `max by (mountpoint)`: a forecast
here is about one host, the one this remediate acts on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from remediate.autonomous.http import HttpError, get_json
from remediate.autonomous.samples import Sample, kind_of, subject_of

# Filesystems with data of their own, as node-exporter labels them.
_FILESYSTEMS = 'fstype!~"tmpfs|ramfs|devtmpfs|overlay|squashfs|nsfs|autofs|proc|sysfs|cgroup2?"'


@dataclass(frozen=True)
class Query:
    """Two expressions, used and capacity in bytes, and the label that names the subject."""

    used: str
    capacity: str
    label: str | None


def _disk(selector: str) -> Query:
    size = f"node_filesystem_size_bytes{{{selector}}}"
    free = f"node_filesystem_free_bytes{{{selector}}}"
    avail = f"node_filesystem_avail_bytes{{{selector}}}"
    # Capacity as df counts it: used + available (root's reserved blocks are not usable).
    return Query(
        used=f"max by (mountpoint) ({size} - {free})",
        capacity=f"max by (mountpoint) ({size} - {free} + {avail})",
        label="mountpoint",
    )


QUERIES: dict[str, Query] = {
    "disk": _disk(_FILESYSTEMS),
    "memory": Query(
        used="max(node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes)",
        capacity="max(node_memory_MemTotal_bytes)",
        label=None,
    ),
    "swap": Query(
        used="max(node_memory_SwapTotal_bytes - node_memory_SwapFree_bytes)",
        capacity="max(node_memory_SwapTotal_bytes) > 0",
        label=None,
    ),
}


def label_value(value: str) -> str:
    """A PromQL string literal: backslashes and quotes escaped, so a value stays a value."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class Prometheus:
    """The Prometheus HTTP API through the one HTTP client; errors name the query."""

    def __init__(self, url: str, *, timeout: float) -> None:
        self.url = url
        self.timeout = timeout

    def _data(self, path: str, params: Mapping[str, str], expression: str) -> Any:
        try:
            answer = get_json(self.url, path, params, timeout=self.timeout)
        except HttpError as error:
            raise HttpError(f"Prometheus query {expression!r}: {error.message}") from None
        if not isinstance(answer, dict) or answer.get("status") != "success":
            said = answer.get("error") if isinstance(answer, dict) else str(answer)[:200]
            raise HttpError(f"Prometheus query {expression!r} failed: {said}")
        data = answer.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("result"), list):
            raise HttpError(f"Prometheus query {expression!r}: no result in the answer")
        return data

    def query_range(
        self, expression: str, *, start: float, end: float, step: float
    ) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        """A matrix: each series' labels and its (time, value) points."""
        data = self._data(
            "/api/v1/query_range",
            {
                "query": expression,
                "start": f"{start:.3f}",
                "end": f"{end:.3f}",
                "step": f"{step:g}",
            },
            expression,
        )
        try:
            return [
                (
                    {str(k): str(v) for k, v in item.get("metric", {}).items()},
                    [(float(at), float(value)) for at, value in item["values"]],
                )
                for item in data["result"]
            ]
        except (KeyError, TypeError, ValueError) as error:
            raise HttpError(
                f"Prometheus query {expression!r}: unexpected answer ({error})"
            ) from None

    def query(self, expression: str, *, at: float) -> list[tuple[dict[str, str], float]]:
        """An instant vector: each series' labels and its value at `at`."""
        data = self._data("/api/v1/query", {"query": expression, "time": f"{at:.3f}"}, expression)
        try:
            return [
                (
                    {str(k): str(v) for k, v in item.get("metric", {}).items()},
                    float(item["value"][1]),
                )
                for item in data["result"]
            ]
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise HttpError(
                f"Prometheus query {expression!r}: unexpected answer ({error})"
            ) from None

    # --- samples ----------------------------------------------------------------------

    def series(self, *, start: float, end: float, step: float) -> dict[str, list[Sample]]:
        """Samples of every disk, memory and swap between start and end, by resource."""
        found: dict[str, list[Sample]] = {}
        for kind, query in QUERIES.items():
            used = self.query_range(query.used, start=start, end=end, step=step)
            capacity = self.query_range(query.capacity, start=start, end=end, step=step)
            capacities = {_name(kind, labels, query): dict(points) for labels, points in capacity}
            for labels, points in used:
                resource = _name(kind, labels, query)
                sizes = capacities.get(resource, {})
                samples = [
                    Sample(at, resource, value, sizes[at])
                    for at, value in points
                    if at in sizes and sizes[at] > 0 and math.isfinite(value)
                ]
                if samples:
                    found[resource] = samples
        return found

    def value_at(self, resource: str, when: float) -> Sample | None:
        """The resource's sample at a time (to score a forecast), or None if Prometheus has none."""
        query = _query_for(resource)
        used = self.query(query.used, at=when)
        capacity = self.query(query.capacity, at=when)
        if not used or not capacity or capacity[0][1] <= 0:
            return None
        return Sample(when, resource, used[0][1], capacity[0][1])

    def predict_linear(
        self, resource: str, *, window_seconds: float, horizon_seconds: float, at: float
    ) -> float | None:
        """Prometheus's own forecast of the percentage used, for disks (None otherwise)."""
        if kind_of(resource) != "disk":
            return None
        mount = label_value(subject_of(resource))
        selector = f"mountpoint={mount}"
        available = (
            f"max(predict_linear(node_filesystem_avail_bytes{{{selector}}}"
            f"[{int(window_seconds)}s], {horizon_seconds:g}))"
        )
        query = _disk(selector)
        predicted = self.query(available, at=at)
        capacity = self.query(query.capacity, at=at)
        used = self.query(query.used, at=at)
        if not predicted or not capacity or not used or capacity[0][1] <= 0:
            return None
        # capacity = used + available, and it stays what it is: used' = capacity - available'.
        return 100.0 * (capacity[0][1] - predicted[0][1]) / capacity[0][1]


def _name(kind: str, labels: Mapping[str, str], query: Query) -> str:
    if query.label is None:
        return kind
    return f"{kind}:{labels.get(query.label, '')}"


def _query_for(resource: str) -> Query:
    kind = kind_of(resource)
    if kind == "disk":
        return _disk(f"mountpoint={label_value(subject_of(resource))}")
    if kind in QUERIES:
        return QUERIES[kind]
    raise HttpError(f"no Prometheus query for resource {resource!r}")
