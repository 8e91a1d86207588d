"""`remediate report ...`: effectiveness, trends, roi, recommendations, monthly.

Only typer and the standard library are imported here; the reports, the store
and rich load inside each command, so `remediate --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

if TYPE_CHECKING:
    from remediate.analytics.window import Window
    from remediate.config.models import Settings
    from remediate.store import Store

report_app = typer.Typer(
    help="Learn from the history: scores, trends, ROI, recommendations, the monthly report.",
    no_args_is_help=True,
)


class Format(StrEnum):
    table = "table"
    json = "json"


FormatOption = Annotated[
    Format, typer.Option("--format", "-f", help="table for people, json for scripts.")
]
LastOption = Annotated[
    Optional[str],  # noqa: UP045 - typer needs Optional on 3.11
    typer.Option("--last", help="Window ending now: 24h, 30d, 4w (default 30d)."),
]
MonthOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--month", help="A calendar month instead, YYYY-MM (UTC)."),
]


def _open() -> tuple[Settings, Store]:
    # The root command's --config lives in remediate.cli; import it here, not at the top,
    # because remediate.cli imports this module when it builds the app.
    from remediate import cli as main
    from remediate.store import Store

    settings, _path = main._settings()
    store = Store.open(
        settings.state.resolved_url(), busy_timeout=settings.state.busy_timeout_seconds
    )
    return settings, store


def _window(last: str | None, month: str | None) -> Window:
    import time

    from remediate.analytics.window import Window
    from remediate.errors import UsageError

    if last and month:
        raise UsageError("give --last or --month, not both")
    if month:
        return Window.month(month)
    return Window.last(last or "30d", now=time.time())


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


def _number(value: float | None, pattern: str = "{:.1f}") -> str:
    return "-" if value is None else pattern.format(value)


@report_app.command("effectiveness")
def effectiveness_command(
    playbook: Annotated[
        Optional[str], typer.Option("--playbook", help="Only this playbook.")  # noqa: UP045
    ] = None,
    last: LastOption = None,
    month: MonthOption = None,
    output: FormatOption = Format.table,
) -> None:
    """A 0-100 score per playbook: success 40, impact 30, time 20, prediction accuracy 10."""
    from remediate.analytics.effectiveness import WEIGHTS, effectiveness
    from remediate.analytics.window import percent

    window = _window(last, month)
    settings, store = _open()
    try:
        report = effectiveness(store, settings.analytics, window, playbook=playbook)
    finally:
        store.close()
    if output is Format.json:
        _print_json(report.as_dict())
        return
    from rich.table import Table

    weights = ", ".join(f"{name.replace('_', ' ')} {weight}" for name, weight in WEIGHTS.items())
    table = Table(
        "playbook",
        "runs",
        "success",
        "impact",
        "time",
        "accuracy",
        "score",
        title=f"effectiveness {window.label()} ({weights})",
    )
    for score in report.scores:
        table.add_row(
            score.playbook,
            str(score.executions),
            *(percent(score.parts[name]) for name in WEIGHTS),
            f"{score.score}/100" if score.score is not None else score.reason,
        )
    console = _console()
    console.print(table)
    if not report.scores:
        console.print("no executions in the window")


@report_app.command("trends")
def trends_command(
    last: LastOption = None, month: MonthOption = None, output: FormatOption = Format.table
) -> None:
    """Runs per playbook per week, blocks and escalations, accuracy, root causes."""
    from remediate.analytics.trends import trends
    from remediate.analytics.window import percent

    window = _window(last, month)
    _settings, store = _open()
    try:
        report = trends(store, window)
    finally:
        store.close()
    if output is Format.json:
        _print_json(report.as_dict())
        return
    from rich.table import Table

    console = _console()
    table = Table(
        "playbook", "runs per week", "halves", "direction", title=f"trends {window.label()}"
    )
    for item in report.playbooks:
        table.add_row(
            item.playbook,
            " ".join(str(count) for count in item.weekly),
            f"{item.first_half} -> {item.second_half}",
            item.direction,
        )
    console.print(table)
    first, second = report.accuracy_halves
    console.print(
        f"prediction accuracy: {percent(first)} -> {percent(second)} ({report.accuracy_direction})"
    )
    for cause in report.root_causes:
        console.print(
            f"- {cause.root_cause.replace('_', ' ')}: {percent(cause.share)} of incidents",
            markup=False,
        )
    refusals = Table("action", "check", "count", "example reason", title="blocks and escalations")
    for refusal in report.refusals:
        refusals.add_row(refusal.action, refusal.check or "-", str(refusal.count), refusal.example)
    console.print(refusals)


@report_app.command("roi")
def roi_command(
    last: LastOption = None, month: MonthOption = None, output: FormatOption = Format.table
) -> None:
    """Incidents prevented, interventions avoided, resolution time, time saved."""
    from remediate.analytics.roi import roi

    window = _window(last, month)
    settings, store = _open()
    try:
        report = roi(store, settings.analytics, window)
    finally:
        store.close()
    if output is Format.json:
        _print_json(report.as_dict())
        return
    from rich.table import Table

    console = _console()
    console.print(
        f"incidents prevented: {report.incidents_prevented} of {report.critical_forecasts} "
        f"critical forecasts; manual interventions avoided: {report.interventions_avoided}; "
        f"time saved: {report.time_saved_seconds / 3600:.1f} h",
        markup=False,
    )
    table = Table(
        "playbook",
        "avoided",
        "manual min",
        "mean run s",
        "alert->fix min",
        "alert->resolved min",
        "saved h",
        title=f"ROI {window.label()}",
    )
    for item in report.playbooks:
        table.add_row(
            item.playbook,
            str(item.interventions_avoided),
            f"{item.manual_minutes:g}",
            _number(item.mean_duration_seconds),
            _number(item.mean_seconds_to_fix and item.mean_seconds_to_fix / 60),
            _number(item.mean_seconds_to_resolved and item.mean_seconds_to_resolved / 60),
            f"{item.time_saved_seconds / 3600:.1f}",
        )
    console.print(table)


@report_app.command("recommendations")
def recommendations_command(
    last: LastOption = None, month: MonthOption = None, output: FormatOption = Format.table
) -> None:
    """What the history suggests changing, each with its evidence."""
    from remediate.analytics.recommendations import recommendations

    window = _window(last, month)
    settings, store = _open()
    try:
        report = recommendations(store, settings, window)
    finally:
        store.close()
    if output is Format.json:
        _print_json(report.as_dict())
        return
    console = _console()
    for number, item in enumerate(report.items, 1):
        console.print(f"{number}. [{item.rule}] {item.message}", markup=False)
    if not report.items:
        console.print(f"nothing to recommend for {window.label()}")


@report_app.command("monthly")
def monthly_command(
    month: MonthOption = None,
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--out", help="Directory for the .md and .html (default: Markdown to stdout)."
        ),
    ] = None,
    output: FormatOption = Format.table,
) -> None:
    """The monthly report (default: last month): Markdown, and HTML with charts under --out."""
    import time

    from remediate.analytics.monthly import monthly, render_markdown, write
    from remediate.analytics.window import Window

    window = Window.month(month) if month else Window.previous_month(now=time.time())
    settings, store = _open()
    try:
        report = monthly(store, settings, window)
    finally:
        store.close()
    if out is not None:
        for path in write(report, out):
            typer.echo(f"wrote {path}", err=True)
    if output is Format.json:
        _print_json(report.as_dict())
    elif out is None:
        sys.stdout.write(render_markdown(report))
