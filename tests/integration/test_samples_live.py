"""Real samples of a real filesystem: an 8 MiB tmpfs this test mounts, fills step by step
and unmounts; the forecast's time to full must match the fill rate. Virtual time stamps
the samples (a step is "3 hours"); the bytes are real.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from remediate.autonomous import samples
from remediate.autonomous.predict import predict
from remediate.autonomous.sampler import Sampler
from remediate.clock import ManualClock, SystemClock
from remediate.config.models import Settings
from remediate.store import Store
from remediate.system.process import run_process
from tests.helpers import require_binary, settings_for, unavailable

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
SIZE = 8 * MIB
STEP = 512 * 1024


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs mounted inside tmp_path for this test only."""
    require_binary("mount", "mount")
    if os.geteuid() != 0:
        unavailable("mounting a tmpfs needs root (run the live sample tests as root)")
    mount = tmp_path / f"fill-{uuid.uuid4().hex[:8]}"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        unavailable(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def live_settings(tmp_path: Path, store_url: str, mount: Path) -> Settings:
    return settings_for(
        tmp_path,
        store_url,
        autonomous={
            "mounts": [str(mount)],
            "containers": False,
            "min_samples": 5,
            "min_history_hours": 12,
            "sample_interval_seconds": 3 * 3600,
        },
    )


def sample_mount(store: Store, settings: Settings, clock: ManualClock, mount: Path) -> None:
    taken, problems = samples.collect_disks(settings.autonomous, now=clock.now())
    assert problems == []
    mine = [sample for sample in taken if sample.resource == f"disk:{mount}"]
    assert len(mine) == 1
    samples.write(store, mine, retention_days=30, now=clock.now())


def test_a_filling_filesystem_gives_a_critical_forecast_with_the_right_time_to_full(
    tmpfs: Path, tmp_path: Path, store_url: str, store: Store, clock: ManualClock
) -> None:
    settings = live_settings(tmp_path, store_url, tmpfs)
    for step in range(10):
        if step:
            (tmpfs / f"chunk-{step}").write_bytes(os.urandom(STEP))
            clock.advance(hours=3)
        sample_mount(store, settings, clock, tmpfs)
    prediction = predict(settings, store, run_process, now=clock.now(), record=True, collect=False)
    [forecast] = [f for f in prediction.forecasts if f.resource == f"disk:{tmpfs}"]
    # 512 KiB every 3 hours is 4 MiB a day; 4.5 MiB used of 8 MiB: full in 3.5/4 days.
    assert forecast.capacity == SIZE
    assert forecast.used == pytest.approx(9 * STEP, rel=0.01)
    assert forecast.trend_per_day == pytest.approx(50.0, rel=0.02)
    assert forecast.seconds_to_full == pytest.approx(3.5 / 4 * 86400, rel=0.03)
    assert forecast.severity == "critical"
    assert forecast.confidence > 80


def test_an_unchanging_filesystem_gives_an_ok_forecast(
    tmpfs: Path, tmp_path: Path, store_url: str, store: Store, clock: ManualClock
) -> None:
    settings = live_settings(tmp_path, store_url, tmpfs)
    (tmpfs / "data").write_bytes(os.urandom(2 * MIB))
    for _ in range(10):
        sample_mount(store, settings, clock, tmpfs)
        clock.advance(hours=3)
    prediction = predict(settings, store, run_process, now=clock.now(), record=True, collect=False)
    [forecast] = [f for f in prediction.forecasts if f.resource == f"disk:{tmpfs}"]
    assert forecast.severity == "ok"
    assert forecast.current == pytest.approx(25.0, abs=0.5)
    assert forecast.seconds_to_full is None


def test_the_background_sampler_stores_real_samples_until_stopped(
    tmpfs: Path, tmp_path: Path, store_url: str, store: Store
) -> None:
    settings = live_settings(tmp_path, store_url, tmpfs)
    sampler = Sampler(settings, store, clock=SystemClock(), interval=0.2)
    sampler.start()
    try:
        for _ in range(100):  # bounded: up to ~10 s for three rounds
            if sampler.rounds >= 3:
                break
            time.sleep(0.1)
    finally:
        sampler.stop()
    stopped_at = sampler.rounds
    assert stopped_at >= 3
    stored = samples.read(store, since=0)
    assert len(stored[f"disk:{tmpfs}"]) >= 3
    assert "memory" in stored
    time.sleep(0.5)
    assert sampler.rounds == stopped_at  # stop() really stopped it


def test_samples_past_retention_are_dropped(
    tmp_path: Path, store_url: str, store: Store, clock: ManualClock
) -> None:
    old = samples.Sample(clock.now() - 40 * 86400, "memory", 1.0, 2.0)
    fresh = samples.Sample(clock.now(), "memory", 1.0, 2.0)
    samples.write(store, [old], retention_days=365, now=clock.now())
    dropped = samples.write(store, [fresh], retention_days=30, now=clock.now())
    assert dropped == 1
    assert [s.at for s in samples.read(store, since=0)["memory"]] == [clock.now()]
