"""The `remediate` executable.

A plain `remediate [-c FILE] serve [--bind ADDR] [--port N] [--token-file F]` goes
straight to the server without importing the command line's framework (Typer, click,
rich): tens of milliseconds of a start-up that should answer /health within 400 ms.
Everything else, `--help` and any mistake included, goes to `remediate.cli`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The options a plain `remediate [-c FILE] serve [...]` can carry: the root callback's and
# `serve`'s, each mapped to its parameter. A test holds these tables to the Typer command.
ROOT_OPTIONS = {"--config": "config", "-c": "config"}
SERVE_OPTIONS = {"--bind": "bind", "--port": "port", "--token-file": "token_file"}


@dataclass(frozen=True)
class ServeOptions:
    config: Path | None = None
    bind: str | None = None
    port: int | None = None
    token_file: Path | None = None


def parse_serve(args: Sequence[str]) -> ServeOptions | None:
    """The options of a plain `serve` command line, or None to leave it to Typer.

    Building the Typer command for the whole CLI costs tens of milliseconds that the
    server's start-up budget cannot spare, so the common forms are read here: `--opt VALUE`,
    `--opt=VALUE` and `-c VALUE`, each option at most once, a value not starting with "-"
    and a port of digits. Anything else (`--help`, a mistake, a repeated option, an unusual
    form) returns None and Typer parses it as before, with the same help and the same errors.
    """
    values: dict[str, str] = {}
    options = ROOT_OPTIONS
    serving = False
    position = 0
    while position < len(args):
        arg = args[position]
        position += 1
        if arg == "serve" and not serving:
            options, serving = SERVE_OPTIONS, True
            continue
        name, equals, value = arg.partition("=")
        if not (equals and name.startswith("--")):
            if position == len(args):
                return None
            name, value = arg, args[position]
            position += 1
        dest = options.get(name)
        if dest is None or dest in values or not value or value.startswith("-"):
            return None
        values[dest] = value
    port = values.get("port")
    if not serving or (port is not None and not (port.isascii() and port.isdigit())):
        return None
    return ServeOptions(
        config=Path(values["config"]) if "config" in values else None,
        bind=values.get("bind"),
        port=int(port) if port is not None else None,
        token_file=Path(values["token_file"]) if "token_file" in values else None,
    )


def print_error(message: str) -> None:
    """`error: MESSAGE` on stderr, as every command reports a RemediateError."""
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, highlight=False).print(f"[red]error:[/] {escape(message)}", soft_wrap=True)


def _settings(config: Path | None) -> tuple[Any, Path | None]:
    """The settings and the file they came from (the CLI's search order)."""
    from remediate.config.loader import find_config_file, load_settings

    path = find_config_file(config)
    return load_settings(path), path


def serve(options: ServeOptions) -> int:
    """Run the server for parsed options; errors are printed as the CLI prints them."""
    import gc

    from remediate.errors import RemediateError

    # The collector stays off while the server's long-lived objects are being created,
    # from the config models on (server.serve freezes them, then turns it back on).
    gc.disable()
    try:
        from remediate.server import serve as run_server

        settings, path = _settings(options.config)
        run_server(
            settings,
            config_path=path,
            bind=options.bind,
            port=options.port,
            token_file=options.token_file,
        )
    except RemediateError as error:
        print_error(error.message)
        return error.exit_code
    except (EOFError, KeyboardInterrupt):
        print("\naborted", file=sys.stderr)
        return 130
    finally:
        gc.enable()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    options = parse_serve(args)
    if options is not None:
        return serve(options)
    from remediate.cli import main as cli_main

    return cli_main(args)


def entry() -> None:
    sys.exit(main())
