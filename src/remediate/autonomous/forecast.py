"""Forecast each resource: a straight line through its recent samples, and how far to trust it.

The model is ordinary least squares on percentage used against time
(`statistics.linear_regression`). Confidence comes from the 95% prediction
interval at the horizon: an interval as wide as `tolerance_percent` (± points)
means 0, a tight one 100; a history shorter than `min_samples` samples or
`min_history_hours` scales it down. A straight line misses step changes and
periodic load; docs/forecasting.md says where it fails.

    forecasts = forecast_all(series, settings.autonomous, now=clock.now())
    [f.as_dict() for f in forecasts if f.severity == "critical"]
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from remediate.autonomous.samples import Sample
from remediate.config.models import Autonomous
from remediate.store import Store
from remediate.store import tables as t

DAY = 86400.0
Severity = Literal["critical", "warning", "ok"]

# Student's t, two-sided 95% (0.975 quantile), by degrees of freedom; between rows the
# smaller df is used (a slightly wider, more cautious interval). Beyond 120: the normal 1.96.
_T_975 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
    9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120,
    17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064,
    25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000,
    120: 1.980,
}  # fmt: skip


def t_quantile(degrees_of_freedom: int) -> float:
    if degrees_of_freedom > 120:
        return 1.96
    return _T_975[max(df for df in _T_975 if df <= degrees_of_freedom)]


@dataclass(frozen=True)
class Forecast:
    """One resource's forecast; percentages are of capacity (100 = full)."""

    resource: str
    created_at: float
    current: float
    trend_per_day: float
    horizon_at: float
    predicted: float
    seconds_to_full: float | None
    severity: Severity
    confidence: float
    samples: int
    used: float
    capacity: float
    r_squared: float | None = None
    interval: float | None = None  # ± percentage points at the horizon (95%)
    source: str = "store"
    prometheus_predicted: float | None = None
    # False below min_samples or min_history_hours: the severity then ignores the trend.
    enough_history: bool = False

    def as_dict(self) -> dict[str, Any]:
        from remediate.clock import format_time

        return {
            "resource": self.resource,
            "severity": self.severity,
            "current_percent": round(self.current, 2),
            "trend_percent_per_day": round(self.trend_per_day, 3),
            "predicted_percent": round(self.predicted, 2),
            "horizon_at": format_time(self.horizon_at),
            "seconds_to_full": round(self.seconds_to_full) if self.seconds_to_full else None,
            "time_to_full": human_duration(self.seconds_to_full),
            "confidence": round(self.confidence, 1),
            "samples": self.samples,
            "used_bytes": round(self.used),
            "capacity_bytes": round(self.capacity),
            "trend_bytes_per_day": round(self.trend_per_day * self.capacity / 100),
            "r_squared": None if self.r_squared is None else round(self.r_squared, 4),
            "interval_percent": None if self.interval is None else round(self.interval, 2),
            "source": self.source,
            "enough_history": self.enough_history,
            "prometheus_predicted_percent": (
                None if self.prometheus_predicted is None else round(self.prometheus_predicted, 2)
            ),
        }


def human_duration(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 2 * DAY:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / DAY:.1f}d"


def severity_of(current: float, predicted: float, config: Autonomous) -> Severity:
    """critical: over `critical_percent` now or by the horizon (the seed: 85% within 7 days)."""
    peak = max(current, predicted)
    if peak >= config.critical_percent:
        return "critical"
    if peak >= config.warning_percent:
        return "warning"
    return "ok"


def fit(
    samples: Sequence[Sample],
    config: Autonomous,
    *,
    now: float,
    horizon_seconds: float | None = None,
    source: str = "store",
) -> Forecast:
    """Forecast one resource from its samples (oldest first, at least one)."""
    if not samples:
        raise ValueError("a forecast needs at least one sample")
    horizon = horizon_seconds if horizon_seconds is not None else config.horizon_days * DAY
    last = samples[-1]
    resource = last.resource
    current = last.percent
    origin = samples[0].at
    days = [(sample.at - origin) / DAY for sample in samples]
    percents = [sample.percent for sample in samples]
    count = len(samples)
    span_hours = (last.at - origin) / 3600
    horizon_x = (now + horizon - origin) / DAY
    now_x = (now - origin) / DAY
    if count < 3 or span_hours <= 0:
        # Too little to draw a line through: no trend, and no confidence in it.
        return Forecast(
            resource, now, current, 0.0, now + horizon, current, None,
            severity_of(current, current, config), 0.0, count, last.used, last.capacity,
            source=source,
        )  # fmt: skip
    slope, intercept = statistics.linear_regression(days, percents)
    fitted = [intercept + slope * x for x in days]
    residual = sum((y - f) ** 2 for y, f in zip(percents, fitted, strict=True))
    mean_x = statistics.fmean(days)
    mean_y = statistics.fmean(percents)
    spread_x = sum((x - mean_x) ** 2 for x in days)
    total = sum((y - mean_y) ** 2 for y in percents)
    r_squared = 1 - residual / total if total > 0 else None
    standard_error = math.sqrt(residual / (count - 2))
    interval = (
        t_quantile(count - 2)
        * standard_error
        * math.sqrt(1 + 1 / count + (horizon_x - mean_x) ** 2 / spread_x)
    )
    predicted = min(100.0, max(0.0, intercept + slope * horizon_x))
    seconds_to_full: float | None = None
    if slope > 0:
        full_x = (100.0 - intercept) / slope
        seconds_to_full = max(0.0, (full_x - now_x) * DAY)
    fit_confidence = max(0.0, 1 - interval / config.tolerance_percent)
    history = min(1.0, count / config.min_samples) * min(1.0, span_hours / config.min_history_hours)
    # Minutes of history extrapolated over days would call every jitter "critical": until
    # the history is long enough, severity reads the current value only.
    enough = count >= config.min_samples and span_hours >= config.min_history_hours
    return Forecast(
        resource=resource,
        created_at=now,
        current=current,
        trend_per_day=slope,
        horizon_at=now + horizon,
        predicted=predicted,
        seconds_to_full=seconds_to_full,
        severity=severity_of(current, predicted if enough else current, config),
        confidence=100 * fit_confidence * history,
        samples=count,
        used=last.used,
        capacity=last.capacity,
        r_squared=r_squared,
        interval=interval,
        source=source,
        enough_history=enough,
    )


def forecast_all(
    series: Mapping[str, Sequence[Sample]],
    config: Autonomous,
    *,
    now: float,
    horizon_seconds: float | None = None,
    source: str = "store",
) -> list[Forecast]:
    """A forecast per resource that has samples, most severe first."""
    order = {"critical": 0, "warning": 1, "ok": 2}
    forecasts = [
        fit(samples, config, now=now, horizon_seconds=horizon_seconds, source=source)
        for samples in series.values()
        if samples
    ]
    return sorted(forecasts, key=lambda f: (order[f.severity], -f.current, f.resource))


def save(store: Store, forecasts: Sequence[Forecast]) -> None:
    """Store every forecast, so that it is scored when its horizon comes."""
    if not forecasts:
        return
    from remediate.autonomous.samples import writing

    with writing(store) as connection:
        connection.execute(
            t.forecasts.insert(),
            [
                {
                    "created_at": forecast.created_at,
                    "resource": forecast.resource,
                    "current": forecast.current,
                    "trend_per_day": forecast.trend_per_day,
                    "horizon_at": forecast.horizon_at,
                    "predicted": forecast.predicted,
                    "seconds_to_full": forecast.seconds_to_full,
                    "severity": forecast.severity,
                    "confidence": forecast.confidence,
                }
                for forecast in forecasts
            ],
        )
