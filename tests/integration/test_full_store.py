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
            refused.append(instance)
            time.sleep(0.1)
        assert recovered is not None, "the receiver did not recover when space returned"

    finally:
        stop_serve(serve)

    # Every acknowledged alert has its decision; no refused one does.
    with sqlite3.connect(tiny_state / "remediate.db") as connection:
        stored = {
            row[0]
            for row in connection.execute("SELECT json_extract(labels, '$.instance') FROM requests")
        }
    assert set(acknowledged) <= stored
    assert not set(refused) & stored
