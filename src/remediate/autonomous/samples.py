"""Resource samples: what is used of each disk, memory, swap and container, kept in the store.

Resources are named `disk:/srv`, `memory`, `swap`, `container:web`; a sample holds
used and capacity in bytes, so a forecast works on the percentage used.

    samples, problems = collect(settings, runner, now=clock.now())
    write(store, samples, retention_days=30, now=clock.now())

A full zram swap is normal (it is compressed RAM), so zram devices are left out
of `swap`: only swap that spills to a disk is sampled and forecast.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from remediate.config.models import Autonomous, Settings
from remediate.errors import RemediateError
from remediate.store import Sql, Store
from remediate.system.process import ProcessRunner

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

DAY = 86400.0
COMMAND_TIMEOUT_SECONDS = 30.0
# Filesystems that hold no data of their own: never sampled unless listed in `mounts`.
PSEUDO_FILESYSTEMS = frozenset(
    {
        "autofs",
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "devtmpfs",
        "efivarfs",
        "fusectl",
        "hugetlbfs",
        "mqueue",
        "nsfs",
        "overlay",
        "proc",
        "pstore",
        "ramfs",
        "rpc_pipefs",
        "securityfs",
        "squashfs",
        "sysfs",
        "tmpfs",
        "tracefs",
    }
)
PSEUDO_PREFIXES = ("/proc", "/sys", "/dev", "/run/user", "/var/lib/containers/storage/overlay")


class SampleError(RemediateError):
    """A collector could not read its resource (the command and the reason are named)."""


@dataclass(frozen=True)
class Sample:
    at: float
    resource: str
    used: float
    capacity: float

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.capacity if self.capacity > 0 else 0.0


def subject_of(resource: str) -> str:
    """The mount or container a resource is about ("disk:/srv" -> "/srv"); "" for memory."""
    _kind, _, subject = resource.partition(":")
    return subject


def kind_of(resource: str) -> str:
    return resource.partition(":")[0]


# --- collectors ---------------------------------------------------------------------------


def disk_mounts(config: Autonomous) -> list[str]:
    """Mount points of real filesystems (one per device), and the configured extra mounts."""
    import psutil

    seen_devices: set[str] = set()
    mounts: list[str] = []
    for partition in psutil.disk_partitions(all=False):
        if partition.fstype in PSEUDO_FILESYSTEMS:
            continue
        if partition.mountpoint.startswith(PSEUDO_PREFIXES):
            continue
        # A device mounted twice (bind mounts) is one resource: keep its first mount point.
        if partition.device in seen_devices:
            continue
        seen_devices.add(partition.device)
        mounts.append(partition.mountpoint)
    for extra in config.mounts:
        if str(extra) not in mounts:
            mounts.append(str(extra))
    return mounts


def collect_disks(config: Autonomous, *, now: float) -> tuple[list[Sample], list[str]]:
    import psutil

    samples: list[Sample] = []
    problems: list[str] = []
    for mount in disk_mounts(config):
        try:
            usage = psutil.disk_usage(mount)
        except OSError as error:
            problems.append(f"disk {mount}: {error.strerror or error}")
            continue
        # Full means nothing is left for ordinary users: capacity is used + available,
        # as df counts it (the blocks reserved for root are not part of it).
        capacity = usage.used + usage.free
        if capacity > 0:
            samples.append(Sample(now, f"disk:{mount}", float(usage.used), float(capacity)))
    return samples, problems


def collect_memory(*, now: float) -> list[Sample]:
    import psutil

    memory = psutil.virtual_memory()
    return [Sample(now, "memory", float(memory.total - memory.available), float(memory.total))]


def collect_swap(*, now: float, swaps: Path = Path("/proc/swaps")) -> list[Sample]:
    """Swap that spills to a disk; zram (compressed RAM, full by design) is left out."""
    import psutil

    from remediate.system.pressure import parse_swaps

    swap = psutil.swap_memory()
    try:
        devices = parse_swaps(swaps.read_text())
    except OSError:
        devices = ()
    zram_total = sum(device.size_bytes for device in devices if device.zram)
    zram_used = sum(device.used_bytes for device in devices if device.zram)
    total = swap.total - zram_total
    if total <= 0:
        return []
    return [Sample(now, "swap", float(max(0, swap.used - zram_used)), float(total))]


_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kKMGTP]?i?B)\s*$")
_FACTORS = {"B": 1, "kB": 1000, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4}
_FACTORS |= {"PB": 1000**5, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}


def parse_size(text: str) -> float:
    """Bytes from podman's go-units strings: "249.9kB", "25.28GB", "0B"."""
    match = _SIZE.match(text)
    if match is None or match.group(2) not in _FACTORS:
        raise ValueError(f"not a size: {text!r}")
    return float(match.group(1)) * _FACTORS[match.group(2)]


PODMAN_STATS = ("podman", "stats", "--no-stream", "--format", "json")


def parse_podman_stats(text: str, *, now: float) -> list[Sample]:
    """Samples from `podman stats --no-stream --format json`; raises ValueError when the
    output is not what podman 4 prints. Containers that are not running (0B / 0B) are left out."""
    data = json.loads(text) if text.strip() else []
    if not isinstance(data, list):
        raise ValueError("expected a JSON array")
    samples: list[Sample] = []
    for item in data:
        if not isinstance(item, dict) or "name" not in item or "mem_usage" not in item:
            raise ValueError(f"an entry without name and mem_usage: {str(item)[:120]}")
        used_text, separator, limit_text = str(item["mem_usage"]).partition("/")
        if not separator:
            raise ValueError(f"mem_usage {item['mem_usage']!r} is not 'USED / LIMIT'")
        used, limit = parse_size(used_text), parse_size(limit_text)
        if limit > 0:
            samples.append(Sample(now, f"container:{item['name']}", used, limit))
    return samples


def collect_containers(runner: ProcessRunner, *, now: float) -> list[Sample]:
    """Per-container memory through the process seam; nothing when podman is absent."""
    if shutil.which("podman") is None:
        return []
    completed = runner(PODMAN_STATS, timeout=COMMAND_TIMEOUT_SECONDS)
    command = " ".join(PODMAN_STATS)
    if completed.timed_out:
        raise SampleError(f"{command} timed out after {COMMAND_TIMEOUT_SECONDS:g}s")
    if completed.returncode != 0:
        said = (completed.stderr or completed.stdout).strip().splitlines()
        raise SampleError(f"{command} exited {completed.returncode}: {said[-1] if said else ''}")
    try:
        return parse_podman_stats(completed.stdout, now=now)
    except ValueError as error:
        raise SampleError(f"cannot parse the output of {command}: {error}") from None


def collect(
    settings: Settings, runner: ProcessRunner, *, now: float
) -> tuple[list[Sample], list[str]]:
    """Every local sample now; a collector that fails is a problem, not the end of the others."""
    config = settings.autonomous
    samples, problems = collect_disks(config, now=now)
    samples += collect_memory(now=now)
    samples += collect_swap(now=now)
    if config.containers:
        try:
            samples += collect_containers(runner, now=now)
        except SampleError as error:
            problems.append(error.message)
    return samples, problems


# --- the store ----------------------------------------------------------------------------


@contextmanager
def writing(store: Store) -> Iterator[Connection]:
    """A write transaction serialized with the gate's (the store's one writer discipline)."""
    with store.gate_transaction() as view:
        yield view.connection


def write(store: Store, samples: Sequence[Sample], *, retention_days: float, now: float) -> int:
    """Insert the samples and drop those past retention; returns how many were dropped."""
    with store.gate_transaction() as view:
        db = view.driver()
        if samples:
            db.insert_many(
                "samples",
                [
                    {
                        "at": sample.at,
                        "resource": sample.resource,
                        "used": sample.used,
                        "capacity": sample.capacity,
                    }
                    for sample in samples
                ],
            )
        dropped = db.execute(
            "DELETE FROM samples WHERE at < :before", before=now - retention_days * DAY
        )
    return int(dropped or 0)


def read(store: Store, *, since: float, until: float | None = None) -> dict[str, list[Sample]]:
    """Stored samples since a time, by resource, oldest first."""
    until_clause = " AND at <= :until" if until is not None else ""
    series: dict[str, list[Sample]] = {}
    with store.sql_reading() as db:
        rows = db.rows(
            "SELECT at, resource, used, capacity FROM samples"  # noqa: S608
            f" WHERE at >= :since{until_clause} ORDER BY at, id",
            since=since,
            until=until,
        )
    for at, resource, used, capacity in rows:
        series.setdefault(resource, []).append(Sample(at, resource, used, capacity))
    return series


def nearest(db: Sql, resource: str, when: float, within: float) -> Sample | None:
    """The stored sample of a resource closest to `when`, if one is within `within` seconds."""
    rows = db.rows(
        "SELECT at, used, capacity FROM samples WHERE resource = :resource"
        " AND at >= :earliest AND at <= :latest ORDER BY at",
        resource=resource,
        earliest=when - within,
        latest=when + within,
    )
    if not rows:
        return None
    at, used, capacity = min(rows, key=lambda row: abs(row[0] - when))
    return Sample(at, resource, used, capacity)
