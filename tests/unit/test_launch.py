"""`remediate serve` replaces itself with `python -OO` (remediate.launch); nothing else does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from remediate import launch
from tests.fixtures_monitoring import REMEDIATE, free_port, start_serve, stop_serve


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REMEDIATE_NO_OPTIMIZE", raising=False)
    monkeypatch.setattr(launch, "_compiled", lambda directory, module="__init__": True)


def test_only_a_serve_line_without_help_is_run_again(compiled: None) -> None:
    again = launch.optimized_argv(["-c", "x.yml", "serve", "--port", "9"])
    head = [sys.executable, "-OO", "-P", "-m", "remediate"]
    assert again == [*head, "-c", "x.yml", "serve", "--port", "9"]
    assert launch.optimized_argv(["--config=x.yml", "serve"]) is not None
    assert launch.optimized_argv(["history"]) is None
    assert launch.optimized_argv(["history", "--playbook", "serve"]) is None
    assert launch.optimized_argv(["-c", "serve"]) is None  # a config file named serve
    assert launch.optimized_argv(["serve", "--help"]) is None
    assert launch.optimized_argv(["serve", "-h"]) is None
    assert launch.optimized_argv([]) is None


def test_the_operator_can_keep_the_process(compiled: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDIATE_NO_OPTIMIZE", "1")
    assert launch.optimized_argv(["serve"]) is None


def test_without_optimized_bytecode_the_process_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiling every module at each start would cost seconds: then stay unoptimized."""
    monkeypatch.delenv("REMEDIATE_NO_OPTIMIZE", raising=False)
    monkeypatch.setattr(launch, "_package_dir", lambda name: "/nonexistent")
    assert launch.optimized_argv(["serve"]) is None


@pytest.mark.parametrize("option", [["-X", "dev"], ["-W", "error"], ["-O"], ["-X", "importtime"]])
def test_an_interpreter_started_with_options_is_kept(option: list[str]) -> None:
    code = "from remediate import launch; print(launch.optimized_argv(['serve']))"
    env = {k: v for k, v in os.environ.items() if k != "REMEDIATE_NO_OPTIMIZE"}
    out = subprocess.run(
        [sys.executable, *option, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.stdout.strip() == "None"
    plain = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert "-OO" in plain.stdout  # the same check without the option would run again


def test_bytecode_is_looked_for_beside_the_module(tmp_path: Path) -> None:
    assert not launch._compiled(str(tmp_path), "server")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    (cache / f"server.{sys.implementation.cache_tag}.opt-2.pyc").write_bytes(b"")
    assert launch._compiled(str(tmp_path), "server")
    assert not launch._compiled(None)


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def test_serve_runs_optimized_with_the_same_pid(tmp_path: Path) -> None:
    """The executable as installed by scripts/venv (which compiles the -OO bytecode)."""
    config = tmp_path / "remediate.yml"
    config.write_text(f"state: {{directory: {tmp_path / 'state'}}}\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "REMEDIATE_NO_OPTIMIZE"}
    serve = start_serve(config, port, tmp_path / "serve.log", env=env)
    try:
        argv = _cmdline(serve.pid)  # the pid Popen started, now the optimized server
        assert argv[1:5] == ["-OO", "-P", "-m", "remediate"]
        assert argv[5:] == ["-c", str(config), "serve", "--port", str(port)]
    finally:
        stop_serve(serve)
    plain = start_serve(
        config, port, tmp_path / "serve.log", env=env | {"REMEDIATE_NO_OPTIMIZE": "1"}
    )
    try:
        assert "-OO" not in _cmdline(plain.pid)
    finally:
        stop_serve(plain)


def test_help_keeps_its_text() -> None:
    """Typer builds help from docstrings: `serve --help` is not run under -OO."""
    out = subprocess.run(
        [REMEDIATE, "serve", "--help"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert "Serve the Alertmanager webhook" in out
