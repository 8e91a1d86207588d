"""Forecasts from a real Prometheus: node-exporter-shaped metrics served by a test exporter
whose filesystem fills at a known rate; our fit and Prometheus's predict_linear agree.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from remediate.autonomous.http import HttpError
from remediate.autonomous.predict import predict
from remediate.autonomous.prometheus import Prometheus, label_value
from remediate.clock import SystemClock
from remediate.store import Store
from remediate.system.process import run_process
from tests.fixtures_monitoring import Exporter, free_port, start_prometheus
from tests.helpers import settings_for

pytestmark = pytest.mark.integration

SIZE = 100 * 1024**3
RATE = 0.001  # percentage points per second: 86.4 points a day


@pytest.fixture(scope="module")
def filling(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, float]]:
    """Prometheus scraping a filesystem /data that fills from 50% at RATE, and memory flat."""
    exporter = Exporter()
    started = time.time()

    def used_fraction() -> float:
        return 0.5 + RATE / 100 * (time.time() - started)

    labels = 'device="/dev/vdb1",fstype="ext4",mountpoint="/data"'
    exporter.set(f"node_filesystem_size_bytes{{{labels}}}", SIZE)
    exporter.follow(f"node_filesystem_free_bytes{{{labels}}}", lambda: SIZE * (1 - used_fraction()))
    exporter.follow(
        f"node_filesystem_avail_bytes{{{labels}}}", lambda: SIZE * (1 - used_fraction())
    )
    exporter.set("node_memory_MemTotal_bytes", 8 * 1024**3)
    exporter.set("node_memory_MemAvailable_bytes", 6 * 1024**3)
    process, address = start_prometheus(
        tmp_path_factory.mktemp("prometheus"),
        targets=[exporter.address],
        rules={"groups": []},
        alertmanager=f"127.0.0.1:{free_port()}",
    )
    url = f"http://{address}"
    try:
        client = Prometheus(url, timeout=5)
        for _ in range(300):  # bounded: up to ~30 s for 12 scrapes
            found = client.query("count_over_time(node_filesystem_avail_bytes[1m])", at=time.time())
            if found and found[0][1] >= 12:
                break
            time.sleep(0.1)
        else:
            pytest.fail("Prometheus did not collect 12 scrapes")
        yield url, started
    finally:
        process.stop()
        exporter.close()


def test_a_filling_disk_in_prometheus_gives_a_critical_forecast_that_predict_linear_confirms(
    filling: tuple[str, float], tmp_path: Path, sqlite_store: Store
) -> None:
    url, _started = filling
    settings = settings_for(
        tmp_path,
        str(sqlite_store.engine.url),
        prometheus={"url": url},
        autonomous={
            "window_days": 0.01,
            "sample_interval_seconds": 1,
            "min_samples": 5,
            "min_history_hours": 0.001,
        },
    )
    prediction = predict(settings, sqlite_store, run_process, now=SystemClock().now(), record=True)
    assert prediction.source == "prometheus"
    by_resource = {forecast.resource: forecast for forecast in prediction.forecasts}
    assert set(by_resource) == {"disk:/data", "memory"}  # no swap: SwapTotal is absent
    disk = by_resource["disk:/data"]
    assert disk.trend_per_day == pytest.approx(RATE * 86400, rel=0.05)
    assert disk.current == pytest.approx(50, abs=0.2)
    assert disk.severity == "critical"
    assert disk.seconds_to_full == pytest.approx(50 / RATE, rel=0.05)
    assert disk.prometheus_predicted is not None
    assert disk.prometheus_predicted > 100  # Prometheus does not clamp; we do
    memory = by_resource["memory"]
    assert (memory.severity, memory.current) == ("ok", pytest.approx(25.0))
    # A shorter horizon stays below full, so the two fits can be compared point for point.
    hour = predict(
        settings, sqlite_store, run_process, now=SystemClock().now(), record=False,
        horizon_seconds=3600,
    )  # fmt: skip
    [short] = [f for f in hour.forecasts if f.resource == "disk:/data"]
    assert short.prometheus_predicted is not None
    assert short.predicted == pytest.approx(short.prometheus_predicted, abs=0.3)


def test_prometheus_reads_a_value_at_a_time_for_scoring(filling: tuple[str, float]) -> None:
    url, started = filling
    sample = Prometheus(url, timeout=5).value_at("disk:/data", time.time())
    assert sample is not None
    assert sample.capacity == pytest.approx(SIZE)
    assert sample.percent == pytest.approx(50 + RATE * (time.time() - started), abs=0.1)


def test_a_bad_query_is_an_error_that_names_it(filling: tuple[str, float]) -> None:
    url, _ = filling
    with pytest.raises(HttpError) as raised:
        Prometheus(url, timeout=5).query("rate(node_filesystem_avail_bytes", at=time.time())
    assert "rate(node_filesystem_avail_bytes" in raised.value.message
    assert "400" in raised.value.message and "parse error" in raised.value.message


def test_an_unreachable_prometheus_is_a_clear_error() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(HttpError) as raised:
        Prometheus(f"http://127.0.0.1:{port}", timeout=2).query("up", at=time.time())
    assert f"127.0.0.1:{port}" in raised.value.message
    assert "refused" in raised.value.message.lower()


def test_a_mount_point_with_quotes_stays_a_label_value() -> None:
    assert label_value('/srv/"x"\\y') == '"/srv/\\"x\\"\\\\y"'
