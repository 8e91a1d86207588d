"""The JSONL audit log: appends, deferred fsync, rotation by moving or deleting the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from remediate.pipeline import audit
from remediate.pipeline.audit import AuditLog


@pytest.fixture(autouse=True)
def look_for_rotation_at_every_append(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit, "ROTATION_CHECK_SECONDS", 0.0)


def lines(path: Path) -> list[int]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


def test_lines_follow_the_file_when_it_is_rotated_away_or_deleted(tmp_path: Path) -> None:
    path = tmp_path / "state" / "decisions.jsonl"
    log = AuditLog(path)
    log.append({"id": 1})
    log.append_many([{"id": 2}, {"id": 3}], sync=False)
    assert log.unsynced
    path.rename(tmp_path / "decisions.jsonl.1")  # logrotate's default: move, then create
    log.append({"id": 4})
    assert not log.unsynced  # what went to the moved file was fsynced on the way
    assert lines(tmp_path / "decisions.jsonl.1") == [1, 2, 3]
    assert lines(path) == [4]
    path.unlink()
    log.append_many([{"id": 5}], sync=False)
    log.sync()
    assert not log.unsynced
    assert lines(path) == [5]
    log.close()
    log.append({"id": 6})  # a closed log opens again when used
    assert lines(path) == [5, 6]
    log.close()


def test_sync_without_unsynced_lines_does_nothing(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "decisions.jsonl")
    log.sync()  # nothing appended yet: no file is created
    assert not (tmp_path / "decisions.jsonl").exists()
    log.append({"id": 1})
    log.sync()
    assert lines(tmp_path / "decisions.jsonl") == [1]
    log.close()
