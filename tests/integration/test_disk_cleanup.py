"""disk-cleanup live: real podman (in its own throwaway storage), real journalctl, a real
temporary filesystem, through the real Pipeline and Store, read back from the metrics."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from remediate.clock import ManualClock
from remediate.metrics import exposition, registry_for
from remediate.pipeline.pipeline import Pipeline, Report
from remediate.pipeline.request import Request
from remediate.playbooks.registry import Registry
from remediate.store import Store
from tests.helpers import require_binary, settings_for

DAY = 86400.0
QUIET = {"images": {"enabled": False}, "journal": {"enabled": False}}
# TESTING.md: crun fails on this machine kind; runc with cgroupfs works.
CONTAINERS_CONF = """\
[engine]
runtime="runc"
cgroup_manager="cgroupfs"
[containers]
default_ulimits=["nofile=1024:1024","nproc=1024:1024"]
"""


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """podman with its own image storage, so pruning never touches anyone else's images.

    CONTAINERS_CONF and CONTAINERS_STORAGE_CONF are set in this process's environment
    (the playbook's podman inherits them) and restored afterwards.
    """
    require_binary("podman", "podman")
    require_binary("runc", "runc")
    busybox = require_binary("busybox", "busybox-static")
    base = tmp_path_factory.mktemp("podman")
    (base / "containers.conf").write_text(CONTAINERS_CONF)
    # vfs: plain directories, works on any filesystem the temporary directory is on.
    (base / "storage.conf").write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{base / "graph"}"\nrunroot = "{base / "run"}"\n'
    )
    rootfs = base / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy(busybox, rootfs / "bin" / "busybox")
    for applet in ("sh", "sleep", "echo", "cat"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    names = ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF")
    saved = {name: os.environ.get(name) for name in names}
    os.environ["CONTAINERS_CONF"] = str(base / "containers.conf")
    os.environ["CONTAINERS_STORAGE_CONF"] = str(base / "storage.conf")
    try:
        yield base
    finally:
        podman_command("rmi", "--all", "--force", check=False)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def podman_command(*argv: str, check: bool = True) -> str:
    completed = subprocess.run(
        ["podman", *argv], capture_output=True, text=True, timeout=120, check=False
    )
    if check and completed.returncode != 0:
        raise AssertionError(f"podman {' '.join(argv)}: {completed.stderr}")
    return completed.stdout


def import_image(base: Path, tag: str) -> str:
    """`podman import` the busybox tree with a unique marker; returns the image id."""
    marker = base / "rootfs" / "marker"
    marker.write_text(uuid.uuid4().hex)
    archive = base / f"{uuid.uuid4().hex}.tar"
    subprocess.run(["tar", "-C", str(base / "rootfs"), "-cf", str(archive), "."], check=True)
    image_id = podman_command("import", "--quiet", str(archive), tag).strip()
    archive.unlink()
    return image_id.removeprefix("sha256:")


def dangling() -> dict[str, int]:
    listed = json.loads(podman_command("images", "--filter", "dangling=true", "--format", "json"))
    return {image["Id"]: int(image["Size"]) for image in listed}


def write(path: Path, size: int, modified: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    os.utime(path, (modified, modified))
    return path


def run_through_pipeline(
    tmp_path: Path, store: Store, store_url: str, clock: ManualClock, section: dict[str, object]
) -> tuple[Report, str]:
    """One manual run of disk-cleanup on tmp_path's filesystem; the report and /metrics text."""
    settings = settings_for(tmp_path, store_url, playbooks={"settings": {"disk-cleanup": section}})
    pipeline = Pipeline(settings, store, Registry.from_settings(settings), clock=clock)
    decision, report = pipeline.run(Request("disk-cleanup", {"mount": str(tmp_path)}))
    assert decision.action == "execute", decision.reason
    assert report is not None
    text = exposition(registry_for(store, settings, clock)).decode()
    return report, text


def reclaimed_metric(text: str) -> float:
    prefix = 'remediation_disk_space_reclaimed_bytes{playbook="disk-cleanup"} '
    [line] = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(line.removeprefix(prefix))


def test_old_files_are_deleted_through_the_pipeline_and_their_bytes_reach_the_metrics(
    tmp_path: Path, store: Store, store_url: str, clock: ManualClock
) -> None:
    now = clock.now()
    root = tmp_path / "logs"
    old = [
        write(root / "a.log", 1500, now - 9 * DAY),
        write(root / "x" / "b.log", 700, now - 20 * DAY),
    ]
    newest_old = write(root / "c.log", 300, now - 8 * DAY)
    recent = write(root / "d.log", 900, now - DAY)
    rule = {"root": str(root), "pattern": "**/*.log", "min_age_days": 7, "keep_newest": 2}

    report, metrics = run_through_pipeline(
        tmp_path, store, store_url, clock, {**QUIET, "paths": [rule]}
    )

    assert report.status == "success", report.summary
    assert [path.exists() for path in old] == [False, False]
    assert newest_old.exists() and recent.exists()  # the two newest are kept
    assert reclaimed_metric(metrics) == 2200
    [row] = store.history()
    assert row["status"] == "success"


def test_a_symlink_out_of_the_root_leaves_its_target_untouched_in_a_live_run(
    tmp_path: Path, store: Store, store_url: str, clock: ManualClock
) -> None:
    root = tmp_path / "logs"
    outside = write(tmp_path / "keep" / "important.log", 4096, clock.now() - 100 * DAY)
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "important.log").symlink_to(outside)
    (root / "linked").symlink_to(outside.parent, target_is_directory=True)
    rules = [
        {"root": str(root), "pattern": "**/*.log", "min_age_days": 0},
        {"root": str(root), "pattern": "linked/*", "min_age_days": 0},
    ]

    report, metrics = run_through_pipeline(
        tmp_path, store, store_url, clock, {**QUIET, "paths": rules}
    )

    assert report.status == "success", report.summary
    assert outside.stat().st_size == 4096
    assert (root / "sub" / "important.log").is_symlink()
    assert reclaimed_metric(metrics) == 0


@pytest.mark.integration
def test_a_dangling_podman_image_is_pruned_and_its_bytes_reach_the_metrics(
    tmp_path: Path, store: Store, store_url: str, clock: ManualClock, podman: Path
) -> None:
    tag = f"localhost/disk-cleanup-{uuid.uuid4().hex[:12]}:latest"
    first = import_image(podman, tag)
    second = import_image(podman, tag)  # takes the tag: the first one is now dangling
    sizes = dangling()
    assert first in sizes and second not in sizes
    old_file = write(tmp_path / "logs" / "old.log", 1234, clock.now() - 30 * DAY)
    section = {
        "images": {"engine": "podman"},
        "journal": {"enabled": False},
        "paths": [{"root": str(tmp_path / "logs")}],
    }

    report, metrics = run_through_pipeline(tmp_path, store, store_url, clock, section)

    assert report.status == "success", report.summary
    assert first not in dangling()
    remaining = json.loads(podman_command("images", "--all", "--format", "json"))
    assert first not in {image["Id"] for image in remaining}
    assert second in {image["Id"] for image in remaining}
    assert not old_file.exists()
    assert report.result is not None
    impacts = {impact.subject: impact.value for impact in report.result.impacts}
    assert impacts == {"images": sum(sizes.values()), str(tmp_path / "logs"): 1234}
    assert reclaimed_metric(metrics) == sum(sizes.values()) + 1234
    details = report.result.details
    assert details["before"]["total_bytes"] == details["after"]["total_bytes"] > 0


@pytest.mark.integration
def test_a_live_journal_vacuum_of_an_empty_journal_directory_frees_nothing(
    tmp_path: Path, store: Store, store_url: str, clock: ManualClock
) -> None:
    require_binary("journalctl", "systemd")
    journal = tmp_path / "journal"
    journal.mkdir()
    section = {"images": {"enabled": False}, "journal": {"directory": str(journal)}}

    report, metrics = run_through_pipeline(tmp_path, store, store_url, clock, section)

    assert report.status == "success", report.summary
    assert report.result is not None
    assert report.result.details["targets"]["journal"]["directories"] == [str(journal)]
    assert {impact.subject: impact.value for impact in report.result.impacts} == {"journal": 0}
    assert reclaimed_metric(metrics) == 0
