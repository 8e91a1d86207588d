"""The `remediate` executable's first step: `remediate serve` runs under `python -OO`.

The server keeps every module it imports for its whole life. Without their docstrings
(and asserts, which in this project only narrow types for the type checker) it needs
about 3.5 MB less memory, 6 % of its idle footprint. Every other command stays as it is:
Typer builds `--help` from docstrings.

The process replaces itself (`os.execv`, same pid) only when nothing is lost by it:
- the command is `serve` and no help is asked for;
- the interpreter was started without options of its own (-X, -W, -O, dev mode);
- the optimized bytecode is on disk for this package and for SQLAlchemy, the largest
  library the server imports (`scripts/venv` compiles it). Without it every start would
  compile some 600 modules again: seconds instead of milliseconds;
- `REMEDIATE_NO_OPTIMIZE` is not set.

This module imports nothing but `os` and `sys`: the check costs well under a millisecond.
"""

from __future__ import annotations

import os
import sys


def optimized_argv(args: list[str]) -> list[str] | None:
    """The command line that runs `remediate ARGS` again under `python -OO`, or None to
    go on in this process."""
    if _command(args) != "serve" or "--help" in args or "-h" in args:
        return None
    if os.environ.get("REMEDIATE_NO_OPTIMIZE") or not sys.executable:
        return None
    flags = sys.flags
    if flags.optimize or flags.dev_mode or sys.warnoptions or sys._xoptions:
        return None
    here = os.path.dirname(os.path.abspath(__file__))  # noqa: PTH100, PTH120 (no pathlib here)
    if not (_compiled(here, "server") and _compiled(_package_dir("sqlalchemy"))):
        return None
    # -P: the working directory is not put on the path, so it cannot shadow the package.
    return [sys.executable, "-OO", "-P", "-m", "remediate", *args]


def _command(args: list[str]) -> str | None:
    """The command word: the first argument after the root options (`-c FILE`)."""
    position = 0
    while position < len(args):
        arg = args[position]
        if arg in ("-c", "--config"):
            position += 2
        elif arg.startswith("--config="):
            position += 1
        else:
            return arg
    return None


def _package_dir(name: str) -> str | None:
    from importlib.machinery import PathFinder

    spec = PathFinder.find_spec(name)
    locations = spec.submodule_search_locations if spec is not None else None
    return locations[0] if locations else None


def _compiled(directory: str | None, module: str = "__init__") -> bool:
    """Whether `directory/module.py` has optimization-level-2 bytecode beside it."""
    if directory is None or sys.implementation.cache_tag is None:
        return False
    name = f"{module}.{sys.implementation.cache_tag}.opt-2.pyc"
    return os.path.exists(os.path.join(directory, "__pycache__", name))  # noqa: PTH110, PTH118


def main() -> None:
    argv = optimized_argv(sys.argv[1:])
    if argv is not None:
        os.execv(argv[0], argv)  # noqa: S606 (argv list: the same arguments, no shell)
    from remediate.entry import entry

    entry()
