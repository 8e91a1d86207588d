"""The JSONL audit log: one line per decision, appended and fsynced after the store commit.

The store is the source of truth; this file is its append-only mirror for jq
and log shippers. Fields: the seed's (timestamp, alert, playbook, parameters,
success, confidence, stdout, stderr; excerpts of at most 500 characters) plus
id, source, action, reason, duration_s, status, check and execution_id.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from remediate.playbooks.base import excerpt


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._parent_made = False
        # Lines written but not yet fsynced (appends with sync=False).
        self.unsynced = False

    def append(self, entry: dict[str, Any]) -> None:
        self.append_many([entry])

    def append_many(self, entries: list[dict[str, Any]], *, sync: bool = True) -> None:
        """Append lines with one write and, with `sync`, one fsync.

        The file is opened for each append, so a log rotated by moving it away is
        picked up at once. Without `sync` the lines are in the page cache (a killed
        process loses nothing) and reach the disk at the next `sync()`.
        """
        line = "".join(
            json.dumps(entry, default=str, ensure_ascii=False, separators=(",", ":")) + "\n"
            for entry in entries
        )
        with self._lock:
            if not self._parent_made:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._parent_made = True
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line.encode())
                if sync:
                    os.fsync(fd)
                else:
                    self.unsynced = True
            finally:
                os.close(fd)

    def sync(self) -> None:
        """fsync lines appended without `sync`, if there are any."""
        with self._lock:
            if not self.unsynced:
                return
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self.unsynced = False


def entry(
    *,
    decision_id: int,
    timestamp: float,
    source: str,
    playbook: str | None,
    alert: str | None,
    parameters: Any,
    action: str,
    reason: str,
    confidence: float,
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
