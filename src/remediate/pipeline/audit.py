"""The JSONL audit log: one line per decision, per execution's outcome and per chain
step a rollback tried to undo, appended and fsynced after the store commit.

The store is the source of truth; this file is its append-only mirror for jq
and log shippers. Fields: the seed's (timestamp, alert, playbook, parameters,
success, confidence, stdout, stderr; excerpts of at most 500 characters) plus
id, source, action, reason, duration_s, status, check and execution_id.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from remediate import jsontext
from remediate.playbooks.base import excerpt

ROTATION_CHECK_SECONDS = 1.0


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._checked_at = 0.0  # monotonic time the path was last compared with the fd
        # Lines written but not yet fsynced (appends with sync=False).
        self.unsynced = False

    def append(self, entry: dict[str, Any]) -> None:
        self.append_many([entry])

    def append_many(self, entries: list[dict[str, Any]], *, sync: bool = True) -> None:
        """Append lines with one write and, with `sync`, one fsync.

        The file stays open between appends; a log rotated by moving or deleting it is
        noticed within a second (its device and inode changed) and reopened. Without
        `sync` the lines are in the page cache (a killed process loses nothing) and
        reach the disk at the next `sync()`.
        """
        line = "".join(jsontext.dumps(entry) + "\n" for entry in entries).encode()
        with self._lock:
            fd = self._open()
            try:
                os.write(fd, line)
                if sync:
                    os.fsync(fd)
                else:
                    self.unsynced = True
            except OSError:
                self._close()  # a fresh start next time (the disk may have been full)
                raise

    def sync(self) -> None:
        """fsync lines appended without `sync`, if there are any."""
        with self._lock:
            if not self.unsynced or self._fd is None:
                return
            try:
                os.fsync(self._fd)
            except OSError:
                self._close()
                raise
            self.unsynced = False

    def close(self) -> None:
        with self._lock:
            if self._fd is not None and self.unsynced:
                os.fsync(self._fd)
                self.unsynced = False
            self._close()

    def _open(self) -> int:
        # Rotation is looked for at most every ROTATION_CHECK_SECONDS: under an alert
        # storm the writer appends hundreds of times a second.
        checked = time.monotonic()
        if self._fd is not None and checked - self._checked_at < ROTATION_CHECK_SECONDS:
            return self._fd
        self._checked_at = checked
        try:
            now = self.path.stat()
            current: tuple[int, int] | None = (now.st_dev, now.st_ino)
        except FileNotFoundError:
            current = None
        if self._fd is not None and current == self._identity:
            return self._fd
        if self._fd is not None and self.unsynced:
            os.fsync(self._fd)  # what went to the rotated file stays durable
            self.unsynced = False
        self._close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        stat = os.fstat(fd)
        self._fd, self._identity = fd, (stat.st_dev, stat.st_ino)
        # Closed with the log, whoever forgets to call close() (a pipeline in a test).
        self._finalizer = weakref.finalize(self, os.close, fd)
        return fd

    def _close(self) -> None:
        if self._fd is not None:
            self._finalizer.detach()
            fd, self._fd, self._identity = self._fd, None, None
            os.close(fd)


def entry(
    *,
    decision_id: int | None,
    timestamp: float,
    source: str,
    playbook: str | None,
    alert: str | None,
    parameters: Any,
    action: str,
    reason: str,
    confidence: float | None,
    status: str | None = None,
    execution_id: int | None = None,
    check: str | None = None,
    stdout: str = "",
    stderr: str = "",
    duration_s: float | None = None,
    forced: bool = False,
) -> dict[str, Any]:
    return {
        "id": decision_id,
        "timestamp": round(timestamp, 3),
        "source": source,
        "alert": alert,
        "playbook": playbook,
        "parameters": parameters or None,
        "action": action,
        "reason": reason,
        "check": check or None,
        "status": status,
        "success": status == "success" if status is not None else None,
        "confidence": confidence,
        "execution_id": execution_id,
        "duration_s": round(duration_s, 3) if duration_s is not None else None,
        "forced": forced,
        "stdout": excerpt(stdout or ""),
        "stderr": excerpt(stderr or ""),
    }
