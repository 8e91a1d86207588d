"""The subprocess seam: argv only, timeouts that kill the whole process group."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from remediate.system.process import run_process


def test_it_runs_argv_and_captures_output() -> None:
    completed = run_process(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10)
    assert (completed.returncode, completed.stdout, completed.stderr) == (3, "out\n", "err\n")
    assert not completed.ok


def test_a_shell_string_is_refused() -> None:
    with pytest.raises(TypeError) as raised:
        run_process("echo hi; rm -rf /", timeout=1)  # type: ignore[arg-type]
    assert "never a shell string" in str(raised.value)


def test_metacharacters_in_an_argument_stay_one_argument(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    completed = run_process(["echo", f"x; touch {marker}"], timeout=10)
    assert completed.stdout == f"x; touch {marker}\n"
    assert not marker.exists()


def test_a_missing_executable_is_a_127_not_a_crash() -> None:
    completed = run_process(["/nonexistent/remediate-test-binary"], timeout=5)
    assert completed.returncode == 127
    assert "nonexistent" in completed.stderr


def test_a_timeout_kills_the_process_and_its_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    completed = run_process(["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"], timeout=0.5)
    assert completed.timed_out
    child = int(pidfile.read_text())
    # The grandchild `sleep 300` was in the same process group and is gone too.
    for _ in range(50):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"child {child} survived the timeout")


def test_a_process_that_ignores_sigterm_gets_sigkill() -> None:
    completed = run_process(["sh", "-c", "trap '' TERM; sleep 300"], timeout=0.3)
    assert completed.timed_out
    assert completed.returncode < 0


def test_env_is_added_to_the_environment() -> None:
    completed = run_process(
        ["sh", "-c", 'echo "$REMEDIATE_X"'], timeout=5, env={"REMEDIATE_X": "y"}
    )
    assert completed.stdout == "y\n"
