"""The monthly report: Markdown in the seed's layout, and HTML with inline SVG charts.

    report = monthly(store, settings, Window.month("2025-12"))
    paths = write(report, Path("reports"))   # remediation-monthly-202512.md and .html

The schedule `monthly-report` (on the 1st) calls `scheduled`, which reports the
month that just ended into `<state dir>/reports/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from remediate.analytics.effectiveness import ACHIEVEMENTS, COUNTED, Effectiveness, effectiveness
from remediate.analytics.recommendations import Recommendations, recommendations
from remediate.analytics.roi import Return, resolved, roi
from remediate.analytics.summary import Summary, Totals, alongside, summarize
from remediate.analytics.trends import Trends, trends
from remediate.analytics.window import DAY, Window, percent
from remediate.config.models import Settings
from remediate.store import Store

TEMPLATES = Path(__file__).parent / "templates"
# What a prevented or avoided incident is called, per playbook, in the seed's words.
INCIDENTS = {
    "self-healing-restart": "service crashes (via self-healing restart)",
    "service-restart": "service outages (via service restart)",
    "database-maintenance": "database performance degradations (via maintenance)",
}


@dataclass(frozen=True)
class Daily:
    """One value per day of the month, for the charts."""

    days: tuple[str, ...]
    executions: tuple[int, ...]
    success_rate: tuple[float | None, ...]
    bytes_reclaimed: tuple[float, ...]


@dataclass(frozen=True)
class Monthly:
    window: Window
    title: str
    summary: dict[str, Any]
    top_performers: tuple[str, ...]
    prevented: tuple[str, ...]
    effectiveness: Effectiveness
    trends: Trends
    roi: Return
    recommendations: Recommendations
    daily: Daily

    @property
    def file_stem(self) -> str:
        return "remediation-monthly-" + self.window.label().replace("-", "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "month": self.window.label(),
            "title": self.title,
            "summary": self.summary,
            "top_performers": list(self.top_performers),
            "incidents_prevented": list(self.prevented),
            "effectiveness": self.effectiveness.as_dict(),
            "trends": self.trends.as_dict(),
            "roi": self.roi.as_dict(),
            "recommendations": self.recommendations.as_dict()["recommendations"],
            "daily": {
                "days": list(self.daily.days),
                "executions": list(self.daily.executions),
                "success_rate": list(self.daily.success_rate),
                "bytes_reclaimed": list(self.daily.bytes_reclaimed),
            },
        }


def human_bytes(value: float) -> str:
    """Decimal units, as disk vendors and `df -H` count: 47 GB is 47e9 bytes."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


def monthly(store: Store, settings: Settings, window: Window) -> Monthly:
    analytics = settings.analytics
    # ROI's resolution times (a join over every alert of the month, the longest read) on a
    # connection of their own, alongside one read of the runs and figures, per day, for all
    # four reports and the charts.
    with alongside(store, lambda: resolved(store, window)) as resolutions:
        with store.reading() as connection:
            shared = summarize(
                connection, window, width=DAY, analytics=analytics, kinds=ACHIEVEMENTS
            )
        scores = effectiveness(store, analytics, window, summary=shared)
        changes = trends(store, window, summary=shared)
        advice = recommendations(store, settings, window, summary=shared)
        returns = roi(store, analytics, window, summary=shared, resolutions=resolutions())
    executions = sum(score.executions for score in scores.scores)
    successes = sum(score.successes for score in scores.scores)
    daily, reclaimed, restarted = _daily(shared)
    summary = {
        "executions": executions,
        "success_rate": successes / executions if executions else None,
        "time_saved_hours": returns.time_saved_seconds / 3600,
        "bytes_reclaimed": reclaimed,
        "services_recovered": int(restarted),
    }
    ranked = sorted(scores.scores, key=lambda score: (-score.executions, score.playbook))
    top = tuple(
        f"{score.playbook} ({score.executions} runs, "
        + (
            f"{percent(score.parts['prediction_accuracy'])} accuracy)"
            if score.parts["prediction_accuracy"] is not None
            else f"{percent(score.parts['success_rate'])} success)"
        )
        for score in ranked[:3]
    )
    prevented = [
        f"{count} {_exhaustion(resource)} events (via predictive maintenance)"
        for resource, count in returns.prevented_by_resource.items()
    ]
    prevented += [
        f"{item.interventions_avoided} {INCIDENTS[item.playbook]}"
        for item in returns.playbooks
        if item.playbook in INCIDENTS and item.interventions_avoided
    ]
    month = datetime.fromtimestamp(window.start, tz=UTC)
    return Monthly(
        window=window,
        title=f"Remediation Report - {month:%B %Y}",
        summary=summary,
        top_performers=top,
        prevented=tuple(prevented),
        effectiveness=scores,
        trends=changes,
        roi=returns,
        recommendations=advice,
        daily=daily,
    )


def _exhaustion(resource: str) -> str:
    kind = resource.split(":", 1)[0]
    return {"disk": "disk exhaustion", "memory": "memory exhaustion"}.get(
        kind, f"{resource} exhaustion"
    )


def _daily(summary: Summary) -> tuple[Daily, float, float]:
    """Runs and success rate per day, bytes reclaimed per day; the bytes and restarts in all."""
    window = summary.window
    days = max(1, round(window.days))
    counted = summary.totals(lambda runs: runs.slice.day, lambda runs: runs.status in COUNTED)
    succeeded = summary.totals(lambda runs: runs.slice.day, lambda runs: runs.status == "success")
    reclaimed = [0.0] * days
    restarted = 0.0
    for figures in summary.figures:
        if figures.kind == "bytes_reclaimed":
            reclaimed[min(figures.slice.day, days - 1)] += figures.total
        elif figures.kind == "service_restarted":
            restarted += figures.total
    labels = tuple(
        datetime.fromtimestamp(window.start + index * DAY, tz=UTC).strftime("%d")
        for index in range(days)
    )
    counts = tuple(counted.get(index, Totals()).count for index in range(days))
    rates = tuple(
        succeeded.get(index, Totals()).count / count if count else None
        for index, count in enumerate(counts)
    )
    return Daily(labels, counts, rates, tuple(reclaimed)), sum(reclaimed), restarted


def _environment(*, html: bool) -> Any:
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=html,  # noqa: S701 - Markdown is not HTML; the HTML template escapes
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["percent"] = percent
    environment.filters["human_bytes"] = human_bytes
    environment.filters["minutes"] = minutes
    return environment


def render_markdown(report: Monthly) -> str:
    template = _environment(html=False).get_template("monthly.md.j2")
    return str(template.render(report=report))


def render_html(report: Monthly) -> str:
    from markupsafe import Markup

    from remediate.analytics.charts import bar_chart, line_chart

    daily = report.daily
    charts = [
        bar_chart("Executions per day", daily.days, daily.executions, unit=lambda v: f"{v:.0f}"),
        line_chart(
            "Success rate per day", daily.days, daily.success_rate, unit=lambda v: f"{100 * v:.0f}%"
        ),
        bar_chart(
            "Bytes reclaimed per day",
            daily.days,
            daily.bytes_reclaimed,
            unit=human_bytes,
            colour="#d8893b",
        ),
    ]
    template = _environment(html=True).get_template("monthly.html.j2")
    # The charts are our own SVG, their text escaped where it was built.
    return str(template.render(report=report, charts=[Markup(chart) for chart in charts]))  # noqa: S704


def write(report: Monthly, out_dir: Path) -> list[Path]:
    """Write the Markdown and the HTML side by side; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = out_dir / f"{report.file_stem}.md"
    html = out_dir / f"{report.file_stem}.html"
    markdown.write_text(render_markdown(report), encoding="utf-8")
    html.write_text(render_html(report), encoding="utf-8")
    return [markdown, html]


def scheduled(
    store: Store, settings: Settings, *, now: float, out_dir: Path | None = None
) -> list[Path]:
    """What the schedule on the 1st runs: the month that just ended, into the state dir."""
    window = Window.previous_month(now=now)
    target = out_dir or settings.state.resolved_directory() / "reports"
    return write(monthly(store, settings, window), target)
