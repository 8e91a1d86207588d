"""Pressure readings: PSI and /proc/swaps parsed, zram recognised (recorded kernel output)."""

from __future__ import annotations

from pathlib import Path

import pytest

from remediate.system.pressure import Snapshot, Swap, parse_psi, parse_swaps, read_psi

# Recorded from /proc/pressure/memory on a loaded host (kernel 6.1).
PSI_MEMORY = """\
some avg10=12.50 avg60=8.31 avg300=2.05 total=123456789
full avg10=4.10 avg60=2.00 avg300=0.51 total=23456789
"""
# /proc/pressure/cpu has no meaningful "full" line on older kernels.
PSI_CPU = "some avg10=0.87 avg60=1.02 avg300=0.95 total=998877\n"

# /proc/swaps on a Fedora host with zram and a disk swap file (sizes in KiB).
SWAPS = """\
Filename				Type		Size		Used		Priority
/dev/zram0                              partition	8388604		8388600		100
/swapfile                               file		4194300		1048575		-2
"""


def test_psi_lines_are_parsed() -> None:
    memory = parse_psi(PSI_MEMORY)
    assert (memory.some_avg10, memory.some_avg60, memory.full_avg60) == (12.5, 8.31, 2.0)
    assert parse_psi(PSI_CPU).full_avg10 is None


def test_psi_without_a_some_line_is_an_error() -> None:
    with pytest.raises(ValueError, match="no 'some' line"):
        parse_psi("full avg10=1 avg60=1 avg300=1 total=1\n")


def test_a_full_zram_swap_is_not_disk_swap_pressure() -> None:
    swaps = parse_swaps(SWAPS)
    assert [swap.zram for swap in swaps] == [True, False]
    snap = Snapshot(memory_total=100, memory_available=50, swaps=swaps)
    # zram is 100% full, but only the disk swap file counts: 1048575 / 4194300.
    assert snap.disk_swap_used_percent == pytest.approx(25.0, abs=0.01)


def test_no_swap_means_zero_disk_swap_use() -> None:
    assert Snapshot(swaps=(Swap("/dev/zram0", "partition", 100, 100),)).disk_swap_used_percent == 0


def test_psi_is_read_from_a_directory_and_missing_files_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "memory").write_text(PSI_MEMORY)
    (tmp_path / "io").write_text("garbage\n")
    assert set(read_psi(tmp_path)) == {"memory"}


def test_this_machine_reports_psi_when_the_kernel_has_it() -> None:
    if not Path("/proc/pressure/memory").exists():
        pytest.skip("this kernel has no PSI")
    assert "memory" in read_psi()
