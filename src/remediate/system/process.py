"""The one seam for subprocesses: argv lists only, a timeout, and a process group killed whole.

Every command remediate runs goes through `run_process` (or a `ProcessRunner`
passed in its place in tests that replay recorded output). A string is never
handed to a shell.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

# After SIGTERM, how long a process group gets to exit before SIGKILL.
TERMINATE_GRACE_SECONDS = 2.0
MAX_OUTPUT_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


class ProcessRunner(Protocol):
    def __call__(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        input: str | None = None,
    ) -> Completed: ...


def run_process(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    input: str | None = None,
) -> Completed:
    """Run argv in a new session; on timeout, SIGTERM then SIGKILL its whole process group.

    A missing executable is reported as returncode 127 with the reason in stderr,
    like a shell would, rather than raised: a playbook records it as a failure.
    """
    if isinstance(argv, str) or not argv:
        raise TypeError("argv must be a non-empty list of strings, never a shell string")
    command = tuple(str(arg) for arg in argv)
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
    except (FileNotFoundError, PermissionError, NotADirectoryError) as error:
        return Completed(command, 127, "", f"{command[0]}: {error.strerror or error}", 0.0)
    timed_out = False
    try:
        stdout, stderr = process.communicate(
            input=input.encode() if input is not None else None, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(process)
        stdout, stderr = process.communicate()
    finally:
        if process.poll() is None:  # interrupted (KeyboardInterrupt, say): leave nothing behind
            _kill_group(process)
    return Completed(
        argv=command,
        returncode=process.returncode if process.returncode is not None else -9,
        stdout=_decode(stdout),
        stderr=_decode(stderr),
        duration=time.monotonic() - started,
        timed_out=timed_out,
    )


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + TERMINATE_GRACE_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None and not _group_alive(process.pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _decode(data: bytes | None) -> str:
    if not data:
        return ""
    return data[:MAX_OUTPUT_BYTES].decode("utf-8", errors="replace")
