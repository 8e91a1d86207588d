"""Memory, CPU and IO pressure as the kernel reports it: PSI, memory, swap (zram-aware),
and the processes that hold the most memory.

A full zram swap is normal: zram is compressed RAM, and the kernel fills it on
purpose. It is reported, never treated as something to fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

PSI_DIRECTORY = Path("/proc/pressure")
SWAPS = Path("/proc/swaps")


@dataclass(frozen=True)
class Pressure:
    """One PSI line set for a resource: share of time (%) some/all tasks stalled."""

    some_avg10: float
    some_avg60: float
    full_avg10: float | None = None
    full_avg60: float | None = None


@dataclass(frozen=True)
class Swap:
    device: str
    kind: str
    size_bytes: int
    used_bytes: int

    @property
    def zram(self) -> bool:
        return "/zram" in self.device


@dataclass(frozen=True)
class Process:
    pid: int
    name: str
    rss_bytes: int


@dataclass(frozen=True)
class Snapshot:
    psi: dict[str, Pressure] = field(default_factory=dict)
    memory_total: int = 0
    memory_available: int = 0
    swaps: tuple[Swap, ...] = ()
    top_processes: tuple[Process, ...] = ()

    @property
    def memory_available_percent(self) -> float:
        return 100.0 * self.memory_available / self.memory_total if self.memory_total else 100.0

    @property
    def disk_swap_used_percent(self) -> float:
        """Use of swap that is not zram: the kind that means real thrashing."""
        disk = [swap for swap in self.swaps if not swap.zram]
        size = sum(swap.size_bytes for swap in disk)
        return 100.0 * sum(swap.used_bytes for swap in disk) / size if size else 0.0


def parse_psi(text: str) -> Pressure:
    values: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        fields = dict(item.split("=", 1) for item in rest.split() if "=" in item)
        values[kind] = {key: float(value) for key, value in fields.items() if key != "total"}
    some = values.get("some")
    if some is None:
        raise ValueError("no 'some' line in PSI output")
    full = values.get("full")
    return Pressure(
        some_avg10=some["avg10"],
        some_avg60=some["avg60"],
        full_avg10=full["avg10"] if full else None,
        full_avg60=full["avg60"] if full else None,
    )


def parse_swaps(text: str) -> tuple[Swap, ...]:
    """/proc/swaps: sizes are in KiB."""
    swaps = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 4:
            swaps.append(Swap(parts[0], parts[1], int(parts[2]) * 1024, int(parts[3]) * 1024))
    return tuple(swaps)


def read_psi(directory: Path = PSI_DIRECTORY) -> dict[str, Pressure]:
    """PSI per resource (cpu, memory, io), or {} where the kernel has no PSI."""
    found: dict[str, Pressure] = {}
    for resource in ("cpu", "memory", "io"):
        try:
            found[resource] = parse_psi((directory / resource).read_text())
        except (OSError, ValueError, KeyError):
            continue
    return found


def top_processes(limit: int) -> tuple[Process, ...]:
    import psutil

    processes = []
    for process in psutil.process_iter(["pid", "name", "memory_info"]):
        info = process.info
        memory = info.get("memory_info")
        if memory is not None:
            processes.append(Process(info["pid"], info.get("name") or "?", memory.rss))
    processes.sort(key=lambda process: process.rss_bytes, reverse=True)
    return tuple(processes[:limit])


def snapshot(*, top: int = 5, psi_directory: Path = PSI_DIRECTORY, swaps: Path = SWAPS) -> Snapshot:
    import psutil

    memory = psutil.virtual_memory()
    try:
        swap_list = parse_swaps(swaps.read_text())
    except OSError:
        swap_list = ()
    return Snapshot(
        psi=read_psi(psi_directory),
        memory_total=memory.total,
        memory_available=memory.available,
        swaps=swap_list,
        top_processes=top_processes(top),
    )
