"""One forecasting pass, shared by `remediate predict`, `observe` and predictive-maintenance:
sample now, score matured forecasts, forecast every resource, store the forecasts.

With `record=False` nothing is written (a dry run, a plan): the samples taken now
join the stored history in memory only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from remediate.autonomous import accuracy, forecast, samples
from remediate.autonomous.accuracy import Breaker, Scored
from remediate.autonomous.forecast import Forecast
from remediate.autonomous.samples import Sample
from remediate.config.models import Settings
from remediate.errors import RemediateError
from remediate.store import Store
from remediate.system.process import ProcessRunner

DAY = 86400.0
MAX_POINTS = 10_000  # Prometheus refuses a range query of more than 11,000 points per series


@dataclass
class Prediction:
    forecasts: list[Forecast]
    breaker: Breaker
    sampled: list[Sample] = field(default_factory=list)
    scored: list[Scored] = field(default_factory=list)
    accuracy: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    source: str = "store"

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "sampled": len(self.sampled),
            "forecasts": [item.as_dict() for item in self.forecasts],
            "scored": [item.as_dict() for item in self.scored],
            "accuracy": {name: round(value, 3) for name, value in self.accuracy.items()},
            "breaker": self.breaker.as_dict(),
            "problems": list(self.problems),
        }


def predict(
    settings: Settings,
    store: Store,
    runner: ProcessRunner,
    *,
    now: float,
    record: bool,
    horizon_seconds: float | None = None,
    collect: bool = True,
    only: str = "*",
) -> Prediction:
    """Forecast every resource (or those matching `only`) now; `record` stores samples,
    scores and forecasts."""
    config = settings.autonomous
    window_start = now - config.window_days * DAY
    problems: list[str] = []
    sampled: list[Sample] = []
    scored: list[Scored] = []
    source = "store"
    if settings.prometheus.url:
        from remediate.autonomous.prometheus import Prometheus

        source = "prometheus"
        client = Prometheus(settings.prometheus.url, timeout=settings.prometheus.timeout_seconds)
        step = max(config.sample_interval_seconds, (now - window_start) / MAX_POINTS)
        series = client.series(start=window_start, end=now, step=step)
        if record:
            scored = accuracy.score_matured(store, config, now=now, actual=client.value_at)
    else:
        if collect:
            sampled, problems = samples.collect(settings, runner, now=now)
            if record:
                samples.write(store, sampled, retention_days=config.retention_days, now=now)
        series = samples.read(store, since=window_start, until=now)
        if not record:
            for sample in sampled:
                series.setdefault(sample.resource, []).append(sample)
        if record:
            scored = accuracy.score_matured(store, config, now=now)
    if only != "*":
        series = {name: items for name, items in series.items() if fnmatchcase(name, only)}
    forecasts = forecast.forecast_all(
        series, config, now=now, horizon_seconds=horizon_seconds, source=source
    )
    if source == "prometheus":
        forecasts = _with_predict_linear(client, forecasts, config.window_days * DAY, problems)
    if record:
        forecast.save(store, forecasts)
    with store.sql_reading() as db:
        by_resource = accuracy.rolling_by_resource(
            db, now=now, window_days=config.accuracy.window_days
        )
    return Prediction(
        forecasts=forecasts,
        breaker=accuracy.breaker(store, config, now=now),
        sampled=sampled,
        scored=scored,
        accuracy=by_resource,
        problems=problems,
        source=source,
    )


def _with_predict_linear(
    client: Any, forecasts: list[Forecast], window_seconds: float, problems: list[str]
) -> list[Forecast]:
    """Add Prometheus's own predict_linear to each disk forecast, to compare the two."""
    import dataclasses

    out: list[Forecast] = []
    for item in forecasts:
        try:
            value = client.predict_linear(
                item.resource,
                window_seconds=window_seconds,
                horizon_seconds=item.horizon_at - item.created_at,
                at=item.created_at,
            )
        except RemediateError as error:
            problems.append(error.message)
            value = None
        out.append(dataclasses.replace(item, prometheus_predicted=value))
    return out
