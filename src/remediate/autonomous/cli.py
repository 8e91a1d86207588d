"""Commands: `observe`, `predict` and `timers install|list|remove|fire`.

`register(app)` adds them to the main Typer app; heavy modules load inside each command.
"""

from __future__ import annotations

import shlex
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer


class Format(StrEnum):
    table = "table"
    json = "json"


FormatOption = Annotated[
    Format, typer.Option("--format", "-f", help="table for people, json for scripts.")
]
DirOption = Annotated[
    Optional[Path],  # noqa: UP045 - typer needs Optional on 3.11
    typer.Option("--dir", help="Unit directory (default ~/.config/systemd/user)."),
]


def register(app: typer.Typer) -> None:
    """Add observe, predict and the timers sub-app to the remediate CLI."""
    app.command()(observe)
    app.command()(predict)
    timers = typer.Typer(
        help="Schedules as systemd user timers (or run by `serve` when embedded).",
        no_args_is_help=True,
    )
    timers.command("install")(timers_install)
    timers.command("list")(timers_list)
    timers.command("remove")(timers_remove)
    timers.command("fire")(timers_fire)
    app.add_typer(timers, name="timers")


def _print_json(data: Any) -> None:
    import json

    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


# --- predict ----------------------------------------------------------------------------


def predict(
    horizon: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--horizon", help="How far ahead: 12h, 7d (default autonomous.horizon_days)."),
    ] = None,
    output: FormatOption = Format.table,
) -> None:
    """Forecast every resource: current use, trend, use at the horizon, time to full, severity.

    The JSON is an array: `remediate predict -f json | jq '[.[] | select(.severity ==
    "critical")]'`. Each forecast is stored, to be scored when its horizon comes.
    """
    from remediate.autonomous.predict import predict as run_prediction
    from remediate.cli import _parse_duration, _runtime
    from remediate.system.process import run_process

    runtime = _runtime()
    try:
        prediction = run_prediction(
            runtime.settings,
            runtime.store,
            run_process,
            now=runtime.clock.now(),
            record=True,
            horizon_seconds=_parse_duration(horizon) if horizon else None,
        )
    finally:
        runtime.close()
    rows = [item.as_dict() for item in prediction.forecasts]
    for row in rows:
        row["accuracy"] = prediction.accuracy.get(row["resource"])
    if output is Format.json:
        _print_json(rows)
        return
    from rich.table import Table

    table = Table("resource", "now", "trend/day", "at horizon", "full in", "severity", "confidence")
    colours = {"critical": "red", "warning": "yellow", "ok": "green"}
    for row in rows:
        table.add_row(
            row["resource"],
            _percent(row["current_percent"]),
            f"{row['trend_percent_per_day']:+.2f} pt",
            _percent(row["predicted_percent"]),
            row["time_to_full"] or "-",
            f"[{colours[row['severity']]}]{row['severity']}[/]",
            f"{row['confidence']:.0f}%",
        )
    console = _console()
    console.print(table)
    if not rows:
        console.print("no samples yet: `remediate serve` samples, or run `remediate observe`")
    console.print(f"accuracy breaker: {prediction.breaker.reason}")
    for problem in prediction.problems:
        console.print(f"[yellow]warning[/] {problem}", markup=True)


# --- observe ----------------------------------------------------------------------------


def observe(
    act: Annotated[
        bool,
        typer.Option("--act", help="Submit the decisions through the gate (source autonomous)."),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Ask the gate and show the plans; run and record nothing."),
    ] = False,
    output: FormatOption = Format.table,
) -> None:
    """One observe-orient-decide-act cycle: samples, forecasts, containers, alerts -> decisions."""
    from remediate.autonomous.observe import Loop
    from remediate.cli import _runtime
    from remediate.errors import PlaybookFailedError

    runtime = _runtime()
    try:
        loop = Loop(runtime.settings, runtime.store, clock=runtime.clock, pipeline=runtime.pipeline)
        cycle = loop.run(act=act, dry_run=dry_run)
    finally:
        runtime.close()
    data = cycle.as_dict()
    if output is Format.json:
        _print_json(data)
    else:
        _show_cycle(data)
    failed = [
        item
        for item in data["decisions"]
        if (item.get("gate") or {}).get("status") in ("failure", "timeout")
    ]
    if failed:
        raise PlaybookFailedError(
            f"{len(failed)} autonomous action(s) failed: "
            + "; ".join(f"{item['playbook']}: {item['gate']['summary']}" for item in failed)
        )


def _show_cycle(data: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = _console()
    seen = data["observations"]
    console.print(
        f"[bold]observe[/] cycle {data['cycle'][:8]} at {data['at']} ({data['mode']}): "
        f"{seen['sampled']} samples, {len(seen['forecasts'])} forecasts, "
        f"{len(seen['containers'])} containers, {len(seen['alerts'])} alerts"
    )
    console.print(
        f"accuracy breaker {seen['breaker']['state']}: {escape(seen['breaker']['reason'])}"
    )
    table = Table("finding", "resource", "confidence", "decision", "gate")
    for item in data["decisions"]:
        gate = item.get("gate") or {}
        answer = gate.get("action", "-")
        if gate.get("status"):
            answer += f" -> {gate['status']}"
        if gate.get("reason") and answer != "execute -> success":
            answer += (
                f" ({gate.get('check') or ''}{': ' if gate.get('check') else ''}{gate['reason']})"
            )
        table.add_row(
            item["kind"],
            item["resource"],
            f"{item['confidence']:.0f}%",
            f"{item['decision']}: {item['reason']}",
            escape(answer) if item["decision"] == "act" else "-",
        )
    if data["decisions"]:
        console.print(table)
    else:
        console.print("nothing needs attention")
    for problem in data["problems"]:
        console.print(f"[yellow]warning[/] {escape(problem)}")
    if data["mode"] == "dry-run":
        console.print("dry run: nothing was executed or recorded")


# --- timers -----------------------------------------------------------------------------


def _unit_command(config: Path | None) -> list[str]:
    """How a unit starts remediate: the script beside this Python, on PATH, or `python -m`."""
    import shutil

    beside = Path(sys.executable).parent / "remediate"
    found = shutil.which("remediate")
    command = (
        [str(beside)]
        if beside.exists()
        else [found]
        if found
        else [sys.executable, "-m", "remediate"]
    )
    if config is not None:
        command += ["--config", str(config.resolve())]
    return command


def timers_install(
    directory: DirOption = None,
    no_enable: Annotated[
        bool, typer.Option("--no-enable", help="Write and reload, but do not enable the timers.")
    ] = False,
    output: FormatOption = Format.table,
) -> None:
    """Write a .service and a .timer per schedule, reload systemd and enable the timers."""
    from remediate.autonomous.schedules import default_directory, install
    from remediate.cli import _settings
    from remediate.system.process import run_process

    settings, path = _settings()
    report = install(
        settings,
        directory or default_directory(),
        run_process,
        command=_unit_command(path),
        enable=not no_enable,
    )
    _show_report(report, output)


def timers_remove(directory: DirOption = None, output: FormatOption = Format.table) -> None:
    """Disable remediate's timers and delete the units it wrote (nothing else)."""
    from remediate.autonomous.schedules import default_directory, remove
    from remediate.system.process import run_process

    report = remove(directory or default_directory(), run_process)
    _show_report(report, output)


def _show_report(report: Any, output: Format) -> None:
    if output is Format.json:
        _print_json(report.as_dict())
        return
    console = _console()
    for name in report.written:
        console.print(f"wrote {report.directory / name}")
    for name in report.removed:
        console.print(f"removed {report.directory / name}")
    for command in report.commands:
        if command.ok is not None:
            mark = "ok" if command.ok else "failed"
            console.print(f"{mark}: {shlex.join(command.argv)}", markup=False)
            if command.output and not command.ok:
                console.print(f"  {command.output}", markup=False)
    if report.manual:
        console.print("systemctl cannot reach a user manager here; run these where it can:")
        for command in report.commands:
            if command.ok is not True:
                console.print(f"  {shlex.join(command.argv)}", markup=False)


def timers_list(directory: DirOption = None, output: FormatOption = Format.table) -> None:
    """Each schedule: calendar, what it runs, next elapse, whether its timer is installed."""
    import time

    from remediate.autonomous.schedules import default_directory, listing
    from remediate.cli import _settings

    settings, _ = _settings()
    rows = listing(settings, directory or default_directory(), now=time.time())
    if output is Format.json:
        _print_json({"runner": settings.schedules.runner, "schedules": rows})
        return
    from rich.table import Table

    table = Table("schedule", "runs", "calendar", "next", "confirmed", "installed")
    for row in rows:
        table.add_row(
            row["name"],
            row["runs"],
            row["calendar"],
            row["next"] or "-",
            "yes" if row["confirmed"] else "no",
            "yes" if row["installed"] else "no",
        )
    console = _console()
    console.print(table)
    console.print(f"runner: {settings.schedules.runner}")


def timers_fire(
    name: Annotated[str, typer.Argument(help="Schedule name (see `remediate timers list`).")],
    output: FormatOption = Format.table,
) -> None:
    """Run one schedule now, with source `schedule` (what each timer's service calls)."""
    from remediate.autonomous.embedded import find, fire
    from remediate.cli import _runtime
    from remediate.errors import PlaybookFailedError, RefusedError

    runtime = _runtime()
    try:
        data = fire(runtime, find(runtime.settings, name))
    finally:
        runtime.close()
    if output is Format.json:
        _print_json(data)
    else:
        _console().print(
            " ".join(f"{key}={value}" for key, value in data.items() if key != "acted"),
            markup=False,
        )
    if data.get("action") in ("block", "escalate"):
        raise RefusedError(f"{data['action']}: {data['reason']}")
    if data.get("status") in ("failure", "timeout", "aborted"):
        raise PlaybookFailedError(f"schedule {name}: {data.get('summary') or data['status']}")
