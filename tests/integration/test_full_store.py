"""A full state directory: the receiver answers 503 (Alertmanager retries),
acknowledges nothing it did not store, and recovers by itself when space returns."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.fixtures_monitoring import free_port, start_serve, stop_serve
from tests.helpers import unavailable


@pytest.fixture
def tiny_state(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs for the state directory (needs root, as CI is)."""
    if os.geteuid() != 0:
        unavailable("mounting a tmpfs needs root")
    mount = tmp_path / "state"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        unavailable(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


# The instance of every alert that has a decision (a request alone is not a decision).
DECIDED_INSTANCES = (
    "SELECT json_extract(requests.labels, '$.instance') FROM requests"
    " JOIN decisions ON decisions.request_id = requests.id"
)


def alert(instance: str, padding: int = 0) -> dict[str, object]:
    return {
        "status": "firing",
        "labels": {"alertname": "Nothing", "instance": instance},
        "annotations": {"filler": "x" * padding},
    }


@pytest.mark.integration
def test_a_full_store_answers_503_acknowledges_nothing_unstored_and_recovers(
    tiny_state: Path,
) -> None:
    config = tiny_state.parent / "remediate.yml"
    config.write_text(f"state: {{directory: {tiny_state}}}\n")
    # Most of the 2 MiB is taken by a filler file, removed later to give space back.
    (tiny_state / "filler").write_bytes(b"\0" * 1_200_000)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = start_serve(config, port, tiny_state.parent / "serve.log")
    acknowledged: list[str] = []
    refused: list[str] = []
    try:
        # Fill the disk: notifications with fat annotations until the store refuses one.
        for _ in range(200):
            instance = uuid.uuid4().hex
            response = httpx.post(
                f"{base}/webhook", json={"alerts": [alert(instance, 200_000)]}, timeout=30
            )
            assert response.status_code in (200, 503), response.text
            (acknowledged if response.status_code == 200 else refused).append(instance)
            if response.status_code == 503:
                break
        assert refused, "the tmpfs never filled up"
        assert "store unavailable" in response.json()["error"]
        assert httpx.get(f"{base}/health", timeout=5).status_code in (200, 503)

        # Space returns: remove the filler the test put beside the database.
        (tiny_state / "filler").unlink()
        recovered = None
        for _ in range(100):
            instance = uuid.uuid4().hex
            response = httpx.post(f"{base}/webhook", json={"alerts": [alert(instance)]}, timeout=30)
            if response.status_code == 200:
                recovered = instance
                acknowledged.append(instance)
                break
            assert response.status_code == 503, response.text  # Alertmanager retries a 503
            refused.append(instance)
            time.sleep(0.1)
        assert recovered is not None, "the receiver did not recover when space returned"

    finally:
        stop_serve(serve)

    # Every acknowledged alert has its decision; no refused one does.
    with sqlite3.connect(tiny_state / "remediate.db") as connection:
        stored = {row[0] for row in connection.execute(DECIDED_INSTANCES)}
    assert set(acknowledged) <= stored
    assert not set(refused) & stored


@pytest.mark.integration
def test_a_read_only_store_answers_503_and_recovers_when_writable_again(tmp_path: Path) -> None:
    """The database files made immutable under a running server (as an ext4 `chattr +i`
    does even to root and even through open descriptors): 503, nothing acknowledged."""
    if os.geteuid() != 0:
        unavailable("chattr +i needs root")
    state = tmp_path / "state"
    config = tmp_path / "remediate.yml"
    config.write_text(f"state: {{directory: {state}}}\n")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = start_serve(config, port, tmp_path / "serve.log")
    files: list[Path] = []
    acknowledged: list[str] = []
    refused: list[str] = []

    def post() -> int:
        instance = uuid.uuid4().hex
        response = httpx.post(f"{base}/webhook", json={"alerts": [alert(instance)]}, timeout=30)
        assert response.status_code in (200, 503), response.text
        (acknowledged if response.status_code == 200 else refused).append(instance)
        return response.status_code

    try:
        assert post() == 200
        # The database and its WAL; not the -shm file, which SQLite maps into memory
        # (writing to a mapped immutable file is a SIGBUS, not an error it could answer).
        files = [state / "remediate.db", state / "remediate.db-wal"]
        done = subprocess.run(["chattr", "+i", *map(str, files)], capture_output=True)
        if done.returncode != 0:
            unavailable(f"chattr +i is not supported here: {done.stderr.decode().strip()}")
        assert post() == 503
        assert post() == 503
        subprocess.run(["chattr", "-i", *map(str, files)], check=True)
        recovered = [post() for _ in range(5)]
        assert recovered[-1] == 200, recovered
    finally:
        if files:
            subprocess.run(["chattr", "-i", *map(str, files)], check=False)
        stop_serve(serve)
    with sqlite3.connect(state / "remediate.db") as connection:
        stored = {row[0] for row in connection.execute(DECIDED_INSTANCES)}
    assert set(acknowledged) <= stored
    assert not set(refused) & stored
