"""`remediate serve` has a fast path that parses its command line without building the Typer
app: the two parsers must accept the same options and read the same values from them, and
everything the fast path does not take (help, mistakes, unusual forms) must reach Typer."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import typer.main
from hypothesis import example, given, settings
from hypothesis import strategies as st

import remediate.server
from remediate import cli, entry
from remediate.cli import ROOT_OPTIONS, SERVE_OPTIONS, ServeOptions, full_app, main, parse_serve


def typer_command() -> Any:
    return typer.main.get_command(full_app())


def option_table(params: list[Any]) -> dict[str, tuple[str, Any]]:
    """option string -> (parameter name, annotation) for the options of a Typer command."""
    table: dict[str, tuple[str, Any]] = {}
    for param in params:
        assert param.envvar is None  # the fast path reads no environment
        assert param.nargs == 1 and not (param.multiple or param.is_flag or param.count)
        for opt in (*param.opts, *param.secondary_opts):
            table[opt] = (param.name, param.type_descriptor.annotation)
    return table


def fast_table(options: dict[str, str]) -> dict[str, tuple[str, Any]]:
    hints = typing.get_type_hints(ServeOptions)
    return {
        opt: (name, next(a for a in typing.get_args(hints[name]) if a is not type(None)))
        for opt, name in options.items()
    }


def test_the_fast_path_knows_exactly_the_options_of_the_root_and_of_serve() -> None:
    command = typer_command()
    assert option_table(command.params) == fast_table(ROOT_OPTIONS)
    assert option_table(command.commands["serve"].params) == fast_table(SERVE_OPTIONS)


@contextmanager
def captured_serve() -> Iterator[list[dict[str, Any]]]:
    """What the `serve` command would start, recorded instead of started."""
    calls: list[dict[str, Any]] = []

    def settings() -> tuple[None, Path | None]:
        return None, cli._state.config

    def run_server(_settings: None, *, config_path: Path | None, **options: Any) -> None:
        calls.append({"config": config_path, **options})

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "_settings", settings)
        patch.setattr(entry, "_settings", lambda config: (None, config))
        patch.setattr(remediate.server, "serve", run_server)
        patch.setattr(cli._state, "config", None)
        yield calls


def through_typer(argv: list[str]) -> dict[str, Any] | None:
    """The values Typer reads from `argv`, or None when it refuses them."""
    with captured_serve() as calls:
        try:
            typer_command().main(args=argv, prog_name="remediate", standalone_mode=False)
        except Exception:  # a usage error: Typer refused the line
            return None
    return calls[-1] if calls else None


def through_fast_path(argv: list[str]) -> dict[str, Any]:
    assert parse_serve(argv) is not None
    with captured_serve() as calls:
        assert main(argv) == 0
    [call] = calls
    return call


@pytest.mark.parametrize(
    "argv",
    [
        ["serve"],
        ["serve", "--port", "9100"],
        ["serve", "--port=0080"],
        ["serve", "--bind", "0.0.0.0", "--token-file", "/run/token"],
        ["serve", "--token-file=relative/token", "--bind=::1", "--port", "1"],
        ["-c", "/etc/remediate.yml", "serve", "--port", "9096"],
        ["--config", "remediate.yml", "serve"],
        ["--config=a=b.yml", "serve", "--bind", "serve"],
        ["-c", "serve", "serve"],
        ["serve", "--bind", "héte.example", "--port", "65535"],
    ],
)
def test_the_fast_path_reads_what_typer_reads(argv: list[str]) -> None:
    expected = through_typer(argv)
    assert expected is not None
    assert through_fast_path(argv) == expected


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["serve", "--help"],
        ["serve", "-h"],
        ["serve", "--port"],
        ["serve", "--port", "http"],
        ["serve", "--port", "+80"],
        ["serve", "--port", "1_000"],
        ["serve", "--port", "\uff11\uff12"],  # fullwidth digits
        ["serve", "--port", "1", "--port", "2"],
        ["serve", "--bind="],
        ["serve", "--bind", "--port"],
        ["serve", "-c", "x.yml"],
        ["-c=x.yml", "serve"],
        ["-cx.yml", "serve"],
        ["serve", "--nope", "1"],
        ["serve", "extra"],
        ["serve", "--", "--port", "1"],
        ["status"],
        ["run", "serve"],
    ],
)
def test_help_mistakes_and_unusual_forms_are_left_to_typer(argv: list[str]) -> None:
    assert parse_serve(argv) is None


def test_serve_help_is_typers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    assert "Serve the Alertmanager webhook" in out
    for option in SERVE_OPTIONS:
        assert option in out


def test_a_bad_port_is_typers_usage_error_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "http"]) == 2
    err = capsys.readouterr().err
    assert "Invalid value for '--port'" in err and "Usage: remediate serve" in err


def test_an_unknown_command_is_a_usage_error_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serv"]) == 2
    assert "No such command 'serv'" in capsys.readouterr().err


NOISE = st.sampled_from(
    [*ROOT_OPTIONS, *SERVE_OPTIONS, "serve", "--help", "-h", "--", "-x", "--nope", "run"]
)
VALUES = st.one_of(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        max_size=12,
    ),
    st.sampled_from(["serve", "-", "--port", "=", "a=b", " 80", "+80", "1_0", "08"]),
)
PORTS = st.one_of(st.integers(0, 99999).map(str), st.from_regex(r"\A[0-9]{1,6}\Z"), VALUES)


@st.composite
def option(draw: st.DrawFn, name: str, values: st.SearchStrategy[str]) -> list[str]:
    value = draw(values)
    if name.startswith("--") and draw(st.booleans()):
        return [f"{name}={value}"]
    return [name, value]


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    """Mostly plausible `serve` lines (options in any order, any values), some with noise."""
    argv: list[str] = []
    if draw(st.booleans()):
        argv += draw(option(draw(st.sampled_from(list(ROOT_OPTIONS))), VALUES))
    argv.append("serve")
    for name in draw(st.permutations(list(SERVE_OPTIONS))):
        if draw(st.booleans()):
            argv += draw(option(name, PORTS if name == "--port" else VALUES))
    for _ in range(draw(st.integers(0, 2))):
        argv.insert(draw(st.integers(0, len(argv))), draw(st.one_of(NOISE, VALUES)))
    return argv


@settings(max_examples=300, deadline=None)  # each line it takes builds the Typer command
@given(command_lines())
@example(["-c", "cfg", "serve", "--port", "8", "--bind", "h", "--token-file", "t"])
@example(["serve", "--port", "\u0663"])  # an Arabic-Indic digit
def test_whatever_the_fast_path_takes_typer_reads_the_same(argv: list[str]) -> None:
    if parse_serve(argv) is None:
        return  # Typer parses it, as for any other command
    expected = through_typer(argv)
    assert expected is not None, f"the fast path took {argv!r}, Typer refuses it"
    assert through_fast_path(argv) == expected


def test_the_executable_serves_without_importing_the_cli_framework(tmp_path: Path) -> None:
    """`remediate serve` (remediate.entry) reaches the server with neither Typer, click
    nor rich imported; `remediate --help` still goes to Typer."""
    import subprocess
    import sys

    config = tmp_path / "remediate.yml"
    config.write_text(f"state: {{directory: {tmp_path / 'state'}}}\n")
    code = (
        "import sys\n"
        "import remediate.server\n"
        "called = []\n"
        "remediate.server.serve = lambda settings, **kw: called.append(kw)\n"
        "from remediate import entry\n"
        f"rc = entry.main(['-c', {str(config)!r}, 'serve', '--port', '19999'])\n"
        "print(rc, called[0]['port'], sorted(m for m in ('typer', 'click', 'rich')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "0 19999 []"
    help_text = subprocess.run(
        [sys.executable, "-m", "remediate", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "--token-file" in help_text
