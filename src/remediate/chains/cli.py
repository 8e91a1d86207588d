"""`remediate chain run|resume|list|status`: chains from the command line.

Exit codes as for every command: 0 success, 1 the chain failed, 2 usage or config
error, 3 refused (pre-flight, or confirmation needed). The main CLI adds this app
with `app.add_typer(chain_app, name="chain")` and maps the errors in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from remediate.cli import Format, FormatOption

if TYPE_CHECKING:
    from remediate.chains.executor import ChainRunner, DryRun, RunReport
    from remediate.runtime import Runtime

chain_app = typer.Typer(
    help="Run several playbooks in sequence as one remediation.", no_args_is_help=True
)

_COLOURS = {
    "success": "green",
    "skipped": "yellow",
    "not_run": "dim",
    "rolled_back": "cyan",
    "running": "blue",
    "pending": "dim",
    "interrupted": "magenta",
}


def _runner(runtime: Runtime) -> ChainRunner:
    from remediate.chains.executor import ChainRunner

    return ChainRunner(
        runtime.settings,
        runtime.store,
        runtime.registry,
        runtime.pipeline,
        clock=runtime.clock,
    )


@chain_app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="Chain to run (see `remediate chain list`).")],
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show every step's plan and conditions now; run nothing."),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Confirm the chain and the steps that need it.")
    ] = False,
    output: FormatOption = Format.table,
) -> None:
    """Run a chain now: pre-flight, then each step through the gate, saved as it goes."""
    from remediate.cli import _runtime

    runtime = _runtime()
    try:
        runner = _runner(runtime)
        if dry_run:
            _show_dry_run(runner.dry_run(runner.chain(name), confirmed=yes), output, yes)
            return
        report = runner.run(name, confirmed=yes, source="manual")
    finally:
        runtime.close()
    _finish(report, output)


@chain_app.command("resume")
def resume(
    run_id: Annotated[
        int, typer.Argument(help="An interrupted run (see `remediate chain status`).")
    ],
    output: FormatOption = Format.table,
) -> None:
    """Continue an interrupted run at its first unfinished step."""
    from remediate.cli import _runtime

    runtime = _runtime()
    try:
        report = _runner(runtime).resume(run_id)
    finally:
        runtime.close()
    _finish(report, output)


@chain_app.command("list")
def list_chains(output: FormatOption = Format.table) -> None:
    """The configured chains, their strategy and their latest run."""
    from remediate.chains import records
    from remediate.cli import _runtime

    runtime = _runtime()
    try:
        records.sweep(runtime.store, now=runtime.clock.now())
        chains = runtime.settings.chains
        latest = records.latest_status(runtime.store, [chain.name for chain in chains])
    finally:
        runtime.close()
    rows: list[dict[str, Any]] = [
        {
            "name": chain.name,
            "description": chain.description,
            "risk_level": chain.risk_level,
            "requires_confirmation": chain.requires_confirmation,
            "strategy": chain.strategy,
            "max_duration": chain.max_duration,
            "steps": [
                {
                    "playbook": step.name,
                    "condition": step.condition,
                    "on_failure": step.on_failure,
                    "timeout": step.timeout,
                }
                for step in chain.playbooks
            ],
            "last_status": latest.get(chain.name, (None, None))[0],
            "last_run": latest.get(chain.name, (None, None))[1],
        }
        for chain in chains
    ]
    if output is Format.json:
        from remediate.cli import _print_json

        _print_json(rows)
        return
    from rich.table import Table

    from remediate.cli import _console, _when

    table = Table("chain", "risk", "confirm", "strategy", "max", "steps", "last run")
    for row in rows:
        steps = " → ".join(
            step["playbook"] + (" (if …)" if step["condition"] else "") for step in row["steps"]
        )
        last = f"{row['last_status']} {_when(row['last_run'])}" if row["last_status"] else "-"
        table.add_row(
            row["name"],
            row["risk_level"],
            "yes" if row["requires_confirmation"] else "no",
            row["strategy"],
            f"{row['max_duration']:g}s",
            steps,
            last,
        )
    console = _console()
    console.print(table)
    if not rows:
        console.print("no chains: add some under chains: in the config")


@chain_app.command("status")
def status(
    run_id: Annotated[
        Optional[int],  # noqa: UP045 - typer needs Optional on 3.11
        typer.Argument(help="A run id; without it, the latest runs."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10_000, help="At most this many runs.")
    ] = 20,
    output: FormatOption = Format.table,
) -> None:
    """Recent chain runs, or one run step by step (a dead run shows as interrupted)."""
    from remediate.chains import records
    from remediate.cli import _runtime

    runtime = _runtime()
    try:
        if run_id is not None:
            report = _runner(runtime).report(run_id)
        else:
            records.sweep(runtime.store, now=runtime.clock.now())
            runs = records.recent_runs(runtime.store, limit=limit)
    finally:
        runtime.close()
    if run_id is not None:
        _show_report(report, output)
        return
    if output is Format.json:
        from remediate.cli import _print_json

        _print_json(runs)
        return
    from rich.table import Table

    from remediate.cli import _console, _when

    table = Table("run", "chain", "source", "status", "started", "secs", "steps", "owner")
    for item in runs:
        colour = _colour(item["status"])
        steps = ", ".join(f"{count} {name}" for name, count in sorted(item["steps"].items()))
        seconds = item["duration_seconds"]
        table.add_row(
            str(item["id"]),
            item["chain"],
            item["source"],
            f"[{colour}]{item['status']}[/]",
            _when(item["started_at"]),
            f"{seconds:.2f}" if seconds is not None else "-",
            steps,
            item["owner"] or "-",
        )
    console = _console()
    console.print(table)
    if not runs:
        console.print("no chain runs yet: remediate chain run NAME --dry-run")


# --- output -------------------------------------------------------------------------------


def _colour(status: str) -> str:
    return _COLOURS.get(status, "red")


def report_data(report: RunReport) -> dict[str, Any]:
    run = report.run
    return {
        "run_id": run.id,
        "chain": run.chain,
        "source": run.source,
        "status": run.status,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_s": round(run.duration, 3) if run.duration is not None else None,
        "owner": run.owner,
        "strategy": run.spec.chain.strategy,
        "steps": [
            {
                "position": step.position + 1,
                "playbook": step.playbook,
                "status": step.status,
                "duration_s": round(step.duration, 3) if step.duration is not None else None,
                "execution_id": step.execution_id,
                **step.detail.model_dump(exclude_defaults=True),
            }
            for step in run.steps
        ],
        "next": list(report.advice),
    }


def _finish(report: RunReport, output: Format) -> None:
    from remediate.errors import PlaybookFailedError, RefusedError

    _show_report(report, output)
    if report.status == "success":
        return
    if report.status == "interrupted":
        raise PlaybookFailedError(f"run {report.run.id} is interrupted")
    counted = [
        step
        for step in report.steps
        if step.status in ("failure", "timeout", "blocked", "escalated")
        and not step.detail.tolerated
    ]
    message = f"chain {report.run.chain} {report.status} (run {report.run.id})"
    if counted and all(step.status in ("blocked", "escalated") for step in counted):
        raise RefusedError(message + ": the gate refused " + counted[0].playbook)
    raise PlaybookFailedError(message)


def _show_report(report: RunReport, output: Format) -> None:
    data = report_data(report)
    if output is Format.json:
        from remediate.cli import _print_json

        _print_json(data)
        return
    from rich.markup import escape
    from rich.table import Table

    from remediate.cli import _console

    console = _console()
    table = Table("#", "playbook", "status", "secs", "detail", title=f"chain {data['chain']}")
    for step in data["steps"]:
        lines = [step.get("summary", "")]
        if step.get("condition"):
            lines.append(
                f"if {step['condition']}: {step.get('condition_observed', 'not evaluated')}"
            )
        if step.get("rollback"):
            lines.append(step["rollback"])
        seconds = step["duration_s"]
        table.add_row(
            str(step["position"]),
            step["playbook"],
            f"[{_colour(step['status'])}]{step['status']}[/]",
            f"{seconds:.2f}" if seconds is not None else "-",
            escape("\n".join(line for line in lines if line)),
        )
    console.print(table)
    seconds = data["duration_s"]
    took = f" in {seconds:.2f}s" if seconds is not None else ""
    console.print(
        f"[{_colour(data['status'])}]{data['status']}[/] chain {data['chain']}{took} "
        f"(run {data['run_id']}, strategy {data['strategy']})"
    )
    for hint in data["next"]:
        console.print(f"  next: {escape(hint)}")


def _show_dry_run(dry_run: DryRun, output: Format, confirmed: bool) -> None:
    import shlex

    chain = dry_run.chain
    preflight = dry_run.preflight
    data = {
        "chain": chain.name,
        "risk_level": chain.risk_level,
        "strategy": chain.strategy,
        "max_duration": chain.max_duration,
        "requires_confirmation": chain.requires_confirmation,
        "confirmed": confirmed,
        "preflight": {
            "errors": list(preflight.errors),
            "problems": list(preflight.problems),
            "warnings": list(preflight.warnings),
        },
        "steps": [
            {
                "position": step.position,
                "playbook": step.playbook,
                "target": step.target,
                "parameters": dict(step.parameters),
                "timeout": step.timeout,
                "condition": step.condition,
                "condition_holds_now": step.holds,
                "condition_observed": step.observed,
                "gate": step.gate,
                "reason": step.reason,
                "plan": [
                    {"description": a.description, "argv": list(a.argv) if a.argv else None}
                    for a in step.plan
                ],
            }
            for step in dry_run.steps
        ],
    }
    if output is Format.json:
        from remediate.cli import _print_json

        _print_json(data)
        return
    from rich.markup import escape
    from rich.table import Table

    from remediate.cli import _console

    console = _console()
    needs = " — needs --yes" if chain.requires_confirmation and not confirmed else ""
    console.print(
        f"[bold]dry run[/] chain {chain.name} (risk {chain.risk_level}, strategy "
        f"{chain.strategy}, max_duration {chain.max_duration:g}s){needs}"
    )
    for label, items in (
        ("error", preflight.errors),
        ("refused", preflight.problems),
        ("warning", preflight.warnings),
    ):
        for item in items:
            console.print(f"  pre-flight {label}: {escape(item)}")
    if not (preflight.errors or preflight.problems):
        console.print("  pre-flight: ok")
    table = Table("#", "playbook", "condition now", "gate", "plan")
    for step in dry_run.steps:
        if step.condition is None:
            condition = "-"
        else:
            verdict = {True: "holds", False: "does not hold", None: "unknown"}[step.holds]
            condition = f"{step.condition}\n{verdict}: {step.observed}"
        plan = "\n".join(
            action.description + (f": {shlex.join(action.argv)}" if action.argv else "")
            for action in step.plan
        )
        table.add_row(
            str(step.position),
            f"{step.playbook}\non {step.target}",
            escape(condition),
            escape(f"{step.gate}: {step.reason}"),
            escape(plan or "-"),
        )
    console.print(table)
    console.print("nothing was executed or recorded")
