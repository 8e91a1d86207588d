"""The `remediate` command line: parses, calls a service function, prints.

Exit codes: 0 done, 1 playbook failed, 2 usage or config error, 3 refused by
the gate or needs confirmation. Heavy modules are imported inside commands,
so `remediate --help` stays fast.
"""

from __future__ import annotations

import functools
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from remediate.entry import ROOT_OPTIONS, SERVE_OPTIONS, ServeOptions, parse_serve, print_error

if TYPE_CHECKING:
    from remediate.runtime import Runtime

__all__ = [
    "ROOT_OPTIONS",
    "SERVE_OPTIONS",
    "ServeOptions",
    "app",
    "full_app",
    "main",
    "parse_serve",
]

app = typer.Typer(
    name="remediate",
    help="Self-hosted auto-remediation behind safety controls an operator can trust.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Check, create or describe the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
export_app = typer.Typer(
    help="Write deployment files (stdout without --out).", no_args_is_help=True
)
app.add_typer(export_app, name="export")


class Format(StrEnum):
    table = "table"
    json = "json"


FormatOption = Annotated[
    Format, typer.Option("--format", "-f", help="table for people, json for scripts.")
]


class _State:
    config: Path | None = None


_state = _State()


@app.callback()
def _root(
    config: Annotated[
        Optional[Path],  # noqa: UP045 - typer needs Optional on 3.11
        typer.Option(
            "--config",
            "-c",
            help="Config file (else $REMEDIATE_CONFIG, ./remediate.yml, "
            "$XDG_CONFIG_HOME/remediate/remediate.yml, built-in defaults).",
        ),
    ] = None,
) -> None:
    _state.config = config


# --- helpers ----------------------------------------------------------------------------


def _settings() -> tuple[Any, Path | None]:
    from remediate.config.loader import find_config_file, load_settings

    path = find_config_file(_state.config)
    return load_settings(path), path


def _runtime() -> Runtime:
    from remediate.runtime import Runtime

    settings, path = _settings()
    return Runtime.build(settings, config_path=path)


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def _parse_pairs(pairs: list[str]) -> dict[str, str]:
    from remediate.errors import UsageError

    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"-p takes KEY=VALUE, got {pair!r}")
        values[key] = value
    return values


def _parse_duration(text: str) -> float:
    from remediate.errors import UsageError

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.replace(".", "", 1).isdigit():
        raise UsageError(f"not a duration: {text!r} (examples: 30m, 24h, 7d)")
    return float(number) * units[unit]


def _when(timestamp: float | None) -> str:
    from remediate.clock import format_time

    return format_time(timestamp) if timestamp else "-"


# --- run --------------------------------------------------------------------------------


@app.command()
def run(
    playbook: Annotated[str, typer.Argument(help="Playbook to run (see `remediate playbooks`).")],
    param: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--param", "-p", help="KEY=VALUE parameter, repeatable."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show the gate's verdict and the exact plan; run nothing."),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Confirm a playbook that requires confirmation.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Bypass pause, limits and breaker (recorded as forced)."),
    ] = False,
    output: FormatOption = Format.table,
) -> None:
    """Run a playbook now, through the gate, and record the outcome."""
    from remediate.errors import PlaybookFailedError, RefusedError
    from remediate.pipeline.request import Request

    runtime = _runtime()
    try:
        request = Request(
            playbook,
            parameters=_parse_pairs(param or []),
            source="manual",
            confirmed=yes,
            forced=force,
            dry_run=dry_run,
        )
        if dry_run:
            preview = runtime.pipeline.preview(request)
            _show_preview(preview, output)
            return
        decision, report = runtime.pipeline.run(request)
    finally:
        runtime.close()
    data = _outcome(decision, report)
    if output is Format.json:
        _print_json(data)
    else:
        _show_run(data)
    if report is None:
        hint = " (add --yes to confirm)" if decision.action == "escalate" else ""
        raise RefusedError(f"{decision.action}: {decision.reason}{hint}")
    if report.status not in ("success", "skipped"):
        raise PlaybookFailedError(f"{report.playbook} {report.status}: {report.summary}")


def _outcome(decision: Any, report: Any) -> dict[str, Any]:
    """What `run` and `approve` print: the decision, and the execution when there was one."""
    data: dict[str, Any] = {
        "decision_id": decision.id,
        "action": decision.action,
        "playbook": decision.playbook,
        "target": decision.target,
        "reason": decision.reason,
        "check": decision.check or None,
    }
    if report is not None:
        data.update(
            execution_id=report.execution_id,
            status=report.status,
            summary=report.summary,
            duration_s=round(report.duration, 3),
            attempts=report.attempts,
            actions=list(report.result.actions) if report.result else [],
        )
    return data


def _show_preview(preview: Any, output: Format) -> None:
    data = {
        "playbook": preview.playbook,
        "target": preview.target,
        "gate": {
            "action": {"allow": "execute"}.get(preview.verdict.action, preview.verdict.action),
            "check": preview.verdict.check or None,
            "reason": preview.verdict.reason or "all checks passed",
        },
        "plan": [
            {"description": action.description, "argv": list(action.argv) if action.argv else None}
            for action in preview.plan.actions
        ],
        "summary": preview.plan.summary,
    }
    if output is Format.json:
        _print_json(data)
        return
    from rich.table import Table

    console = _console()
    gate = data["gate"]
    console.print(
        f"[bold]dry run[/] {preview.playbook} on {preview.target}: the gate would "
        f"[bold]{gate['action']}[/] ({gate['reason']})"
    )
    table = Table("#", "action", "command", title="plan")
    for number, action in enumerate(preview.plan.actions, 1):
        import shlex

        table.add_row(
            str(number), action.description, shlex.join(action.argv) if action.argv else ""
        )
    console.print(table)
    if preview.plan.summary:
        console.print(f"summary: {preview.plan.summary}", markup=False)
    console.print("nothing was executed or recorded")


def _show_run(data: dict[str, Any]) -> None:
    console = _console()
    status = data.get("status")
    colour = {"success": "green", "skipped": "yellow"}.get(status or "", "red")
    if status is None:
        console.print(
            f"[yellow]{data['action']}[/] {data['playbook']}: {data['reason']} "
            f"(decision {data['decision_id']})"
        )
        return
    console.print(
        f"[{colour}]{status}[/] {data['playbook']} on {data['target']} in "
        f"{data['duration_s']:.2f}s: {data['summary']} (decision {data['decision_id']}, "
        f"execution {data['execution_id']})"
    )
    for action in data.get("actions", []):
        console.print(f"  - {action}", markup=False)


# --- playbooks, history, status ---------------------------------------------------------


@app.command()
def playbooks(output: FormatOption = Format.table) -> None:
    """List the playbooks with their risk and parameters."""
    from remediate.playbooks.registry import Registry

    settings, _ = _settings()
    registry = Registry.from_settings(settings)
    rows: list[dict[str, Any]] = []
    for playbook in registry:
        if getattr(playbook, "is_chain", False):
            continue  # chains are listed by `remediate chain list`
        schema = playbook.parameter_schema()
        required = set(schema.get("required", []))
        parameters = {
            name: {
                "type": prop.get("type") or _any_of_type(prop),
                "required": name in required,
                "default": prop.get("default"),
                "description": prop.get("description"),
            }
            for name, prop in schema.get("properties", {}).items()
        }
        rows.append(
            {
                "name": playbook.name,
                "description": playbook.description,
                "risk": playbook.risk,
                "requires_confirmation": playbook.requires_confirmation,
                "timeout": playbook.timeout,
                "parameters": parameters,
            }
        )
    if output is Format.json:
        _print_json(rows)
        return
    from rich.table import Table

    table = Table()
    table.add_column("playbook", no_wrap=True)
    table.add_column("risk", no_wrap=True)
    table.add_column("confirm", no_wrap=True)
    table.add_column("parameters")
    table.add_column("description", ratio=1)
    for row in rows:
        params = ", ".join(
            f"{name}{'' if p['required'] else '?'}:{p['type']}"
            for name, p in row["parameters"].items()
        )
        table.add_row(
            row["name"],
            row["risk"],
            "yes" if row["requires_confirmation"] else "no",
            params or "-",
            row["description"],
        )
    console = _console()
    console.print(table)
    if not rows:
        console.print("no playbooks: add command playbooks under playbooks.commands in the config")


def _any_of_type(prop: dict[str, Any]) -> str:
    types = [item.get("type") for item in prop.get("anyOf", []) if item.get("type") != "null"]
    return "|".join(str(t) for t in types if t) or "any"


@app.command()
def history(
    last: Annotated[str, typer.Option("--last", help="How far back: 30m, 24h, 7d.")] = "24h",
    playbook: Annotated[
        Optional[str], typer.Option("--playbook", help="Only this playbook.")  # noqa: UP045
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10_000, help="At most this many.")
    ] = 50,
    output: FormatOption = Format.table,
) -> None:
    """Recent decisions and their executions, newest first."""
    runtime = _runtime()
    try:
        rows = runtime.store.history(
            since=runtime.clock.now() - _parse_duration(last), playbook=playbook, limit=limit
        )
    finally:
        runtime.close()
    if output is Format.json:
        _print_json(rows)
        return
    from rich.table import Table

    table = Table("id", "time", "source", "alert", "playbook", "action", "status", "secs", "reason")
    for row in rows:
        table.add_row(
            str(row["id"]),
            _when(row["created_at"]),
            row["source"],
            row["alertname"] or "-",
            row["playbook"] or "-",
            row["action"],
            row["status"] or "-",
            f"{row['duration_seconds']:.2f}" if row["duration_seconds"] is not None else "-",
            row["summary"] if row["status"] else row["reason"],
        )
    console = _console()
    console.print(table)
    if not rows:
        console.print(f"no decisions in the last {last}")


@app.command()
def status(output: FormatOption = Format.table) -> None:
    """Pause flag, circuit breakers, running executions and pending approvals."""
    from remediate.status import collect_status

    runtime = _runtime()
    try:
        data = collect_status(runtime)
    finally:
        runtime.close()
    if output is Format.json:
        _print_json(data)
        return
    from rich.table import Table

    console = _console()
    paused = data["paused"]
    console.print(
        f"automatic remediation: [bold]{'PAUSED' if paused else 'active'}[/]"
        + (
            f" ({paused.get('reason')})"
            if isinstance(paused, dict) and paused.get("reason")
            else ""
        )
    )
    console.print(
        f"store: {data['store']}  queue: {data['queued']}  running: {len(data['running'])}"
    )
    table = Table("playbook", "breaker", "failures in a row", "last run", "last status")
    for row in data["playbooks"]:
        table.add_row(
            row["playbook"],
            row["breaker"],
            str(row["consecutive_failures"]),
            _when(row["last_run"]),
            row["last_status"] or "-",
        )
    console.print(table)
    if data["pending_approvals"]:
        console.print(f"{data['pending_approvals']} approval(s) pending")


@app.command()
def pause(
    reason: Annotated[str, typer.Option("--reason", help="Why, shown in status and blocks.")] = "",
) -> None:
    """Stop every automatic trigger until `remediate resume` (run --force still works)."""
    runtime = _runtime()
    try:
        runtime.store.set_flag(
            "paused", {"reason": reason, "at": runtime.clock.now()}, now=runtime.clock.now()
        )
        runtime.write_textfile()
    finally:
        runtime.close()
    _console().print("automatic remediation paused")


@app.command()
def resume() -> None:
    """Let automatic triggers act again."""
    runtime = _runtime()
    try:
        runtime.store.set_flag("paused", None, now=runtime.clock.now())
        runtime.write_textfile()
    finally:
        runtime.close()
    _console().print("automatic remediation resumed")


# --- approvals ----------------------------------------------------------------------


@app.command()
def pending(output: FormatOption = Format.table) -> None:
    """Escalations waiting for an operator."""
    from remediate.pipeline import approvals

    runtime = _runtime()
    try:
        rows = approvals.listing(runtime.store, runtime.clock.now())
    finally:
        runtime.close()
    if output is Format.json:
        _print_json(rows)
        return
    from rich.table import Table

    table = Table("id", "since", "expires", "source", "alert", "playbook", "parameters", "reason")
    for row in rows:
        table.add_row(
            str(row["id"]),
            _when(row["created_at"]),
            _when(row["expires_at"]),
            row["source"],
            row["alertname"] or "-",
            row["playbook"] or "-",
            json.dumps(row["parameters"]) if row["parameters"] else "-",
            row["reason"],
        )
    console = _console()
    console.print(table)
    if not rows:
        console.print("nothing waits for approval")


def _operator() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


@app.command()
def approve(
    approval_id: Annotated[int, typer.Argument(help="Approval id (see `remediate pending`).")],
    output: FormatOption = Format.table,
) -> None:
    """Approve an escalation: it passes through the gate again and runs now if admitted."""
    from remediate.errors import PlaybookFailedError, RefusedError
    from remediate.pipeline import approvals

    runtime = _runtime()
    try:
        decision = approvals.approve(runtime.pipeline, approval_id, by=_operator())
        report = (
            runtime.pipeline.execute(decision.execution_id)
            if decision.execution_id is not None
            else None
        )
    finally:
        runtime.close()
    data = {"approval_id": approval_id, **_outcome(decision, report)}
    if output is Format.json:
        _print_json(data)
    else:
        _show_run(data)
    if report is None:
        raise RefusedError(f"approved, but the gate said {decision.action}: {decision.reason}")
    if report.status not in ("success", "skipped"):
        raise PlaybookFailedError(f"{report.playbook} {report.status}: {report.summary}")


@app.command()
def reject(
    approval_id: Annotated[int, typer.Argument(help="Approval id (see `remediate pending`).")],
) -> None:
    """Reject an escalation: nothing runs."""
    from remediate.pipeline import approvals

    runtime = _runtime()
    try:
        approvals.reject(runtime.store, approval_id, by=_operator(), now=runtime.clock.now())
    finally:
        runtime.close()
    _console().print(f"approval {approval_id} rejected")


# --- simulate ---------------------------------------------------------------------------


@app.command()
def simulate(
    file: Annotated[
        Path, typer.Argument(help="JSONL (or JSON array) of {at, payload[, outcome]}.")
    ],
    output: FormatOption = Format.table,
) -> None:
    """Replay alerts through routing and the gate on virtual time; execute nothing."""
    from remediate.webhook.simulate import read_steps
    from remediate.webhook.simulate import simulate as run_simulation

    settings, _ = _settings()
    rows = run_simulation(settings, read_steps(file))
    if output is Format.json:
        _print_json(rows)
        return
    from rich.table import Table

    table = Table("at", "alert", "playbook", "action", "reason")
    for row in rows:
        action = row["action"] + (f" ({row['result']})" if row["action"] == "executed" else "")
        table.add_row(row["at"], row["alert"], row["playbook"] or "-", action, row["reason"])
    _console().print(table)


# --- export -----------------------------------------------------------------------------


def _emit(text: str, out: Path | None, name: str) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    target = out / name if out.is_dir() or str(out).endswith("/") else out
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    _console(stderr=True).print(f"wrote {target}")


OutOption = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--out", help="A directory or file to write (default: stdout)."),
]


@export_app.command("alertmanager")
def export_alertmanager(
    url: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--url", help="Webhook URL Alertmanager should call."),
    ] = None,
    token_file: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--token-file", help="File with the token, as Alertmanager sees it."),
    ] = None,
    out: OutOption = None,
) -> None:
    """Receiver and routes for Alertmanager (continue: true keeps your notifications)."""
    from remediate.deploy.alertmanager import render

    settings, _ = _settings()
    target = url or f"http://{settings.server.bind}:{settings.server.port}/webhook"
    _emit(render(settings, url=target, token_file=token_file), out, "alertmanager.yml")


@export_app.command("systemd")
def export_systemd(out: OutOption = None) -> None:
    """The remediate.service unit with the seed's limits and hardening."""
    import shutil

    from remediate.deploy.systemd import render_service

    settings, path = _settings()
    beside = Path(sys.executable).parent / "remediate"
    found = shutil.which("remediate")
    command = (
        [str(beside)]
        if beside.exists()
        else [found]
        if found
        else [sys.executable, "-m", "remediate"]
    )
    text = render_service(
        command=command,
        config=str(path.resolve()) if path else None,
        bind=settings.server.bind,
        port=settings.server.port,
    )
    _emit(text, out, "remediate.service")


@export_app.command("grafana")
def export_grafana(out: OutOption = None) -> None:
    """The "Remediation Effectiveness" and "Remediation Intelligence" dashboards."""
    from remediate.deploy.grafana import dashboards, render

    if out is None:
        _print_json({name: json.loads(text) for name, text in dashboards().items()})
        return
    for path in render(out):
        _console(stderr=True).print(f"wrote {path}")


@export_app.command("rules")
def export_rules(
    job: Annotated[
        str, typer.Option("--job", help="The Prometheus job that scrapes remediate serve.")
    ] = "remediate",
    out: OutOption = None,
) -> None:
    """Prometheus alerting rules about remediate itself (promtool check rules passes)."""
    from remediate.deploy.rules import render

    settings, _ = _settings()
    _emit(render(settings, job=job), out, "remediate.rules.yml")


# --- serve ------------------------------------------------------------------------------


@app.command()
def serve(
    bind: Annotated[
        Optional[str], typer.Option("--bind", help="Address (default 127.0.0.1).")  # noqa: UP045
    ] = None,
    port: Annotated[
        Optional[int], typer.Option("--port", help="Port (default 9096).")  # noqa: UP045
    ] = None,
    token_file: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--token-file", help="File holding the webhook token."),
    ] = None,
) -> None:
    """Serve the Alertmanager webhook, decisions, approvals, health and metrics."""
    from remediate.server import serve as run_server

    settings, path = _settings()
    run_server(settings, config_path=path, bind=bind, port=port, token_file=token_file)


# --- config -----------------------------------------------------------------------------


@config_app.command("check")
def config_check(output: FormatOption = Format.table) -> None:
    """Validate the config file (exit 2 naming file, line and field on error)."""
    from remediate.config.checks import cross_check

    settings, path = _settings()
    warnings = cross_check(settings)
    data = {
        "file": str(path) if path else None,
        "valid": True,
        "routes": len(settings.routes),
        "services": len(settings.services),
        "command_playbooks": len(settings.playbooks.commands),
        "chains": len(settings.chains),
        "schedules": len(settings.schedules.items),
        "warnings": warnings,
    }
    if output is Format.json:
        _print_json(data)
        return
    console = _console()
    console.print(
        f"[green]ok[/] {path or 'built-in defaults'}: {data['routes']} routes, "
        f"{data['services']} services, {data['command_playbooks']} command playbooks, "
        f"{data['chains']} chains, {data['schedules']} schedules"
    )
    for warning in warnings:
        from rich.markup import escape

        console.print(f"[yellow]warning[/] {escape(warning)}")


@config_app.command("init")
def config_init(
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--out", help="Where to write (default: stdout)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented config file with the built-in defaults."""
    from remediate.config.loader import render_default_config
    from remediate.errors import UsageError

    text = render_default_config()
    if out is None:
        sys.stdout.write(text)
        return
    if out.exists() and not force:
        raise UsageError(f"{out} exists (use --force to overwrite)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    _console(stderr=True).print(f"wrote {out}")


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the config file, for editors."""
    from remediate.config.loader import settings_schema

    _print_json(settings_schema())


# --- sub-apps living beside their subject ------------------------------------------------


@functools.cache
def full_app() -> typer.Typer:
    """The whole app: `app` and the sub-apps that live beside their subject.

    They are added on first use rather than at import (they import the helpers above),
    so `remediate serve` never loads them.
    """
    from remediate.analytics.cli import report_app
    from remediate.autonomous.cli import register as register_autonomous
    from remediate.chains.cli import chain_app

    app.add_typer(chain_app, name="chain")
    app.add_typer(report_app, name="report")
    register_autonomous(app)
    return app


# --- entry point ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and map errors to exit codes in one place."""
    import click

    from remediate.errors import RemediateError

    # Older Typer parses with click, newer releases with a copy of click of their own
    # (typer._click, whose exceptions derive from typer.TyperException): catch either.
    usage_errors: tuple[type[Exception], ...] = (click.ClickException,)
    if hasattr(typer, "TyperException"):
        usage_errors += (typer.TyperException,)
    args = sys.argv[1:] if argv is None else argv
    options = parse_serve(args)
    if options is not None:  # a plain `serve`: the same path as the executable's
        from remediate.entry import serve as serve_parsed

        return serve_parsed(options)
    result: Any = None
    try:
        command = typer.main.get_command(full_app())
        result = command.main(args=args, prog_name="remediate", standalone_mode=False)
    except RemediateError as error:
        print_error(error.message)
        return error.exit_code
    except (click.exceptions.Exit, typer.Exit) as done:
        return int(done.exit_code)
    except usage_errors as error:
        error.show()  # type: ignore[attr-defined]  # both kinds show themselves
        return 2
    except (click.exceptions.Abort, typer.Abort):
        _console(stderr=True).print("aborted")
        return 130
    return int(result) if isinstance(result, int) else 0


def entry() -> None:
    from remediate.entry import entry as light_entry

    light_entry()
