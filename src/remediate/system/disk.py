"""Filesystems as disk-cleanup sees them: usage (statvfs), files past an age, safe deletion.

Deletion never leaves a configured root: candidates are found under the root's
real path, symlinks are never followed nor deleted, and each removal walks from
the root with `O_NOFOLLOW` directory descriptors and re-checks the file's
identity first, so a directory or file swapped for a symlink after planning is
skipped instead of followed.

    usage = disk_usage("/")
    found = find_candidates(Path("/srv/logs"), "**/*.log")
    outcome = remove_inside(found.root, found.candidates[0])
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

__all__ = [
    "PROTECTED_DIRECTORIES",
    "Candidate",
    "Found",
    "Image",
    "JournalVacuum",
    "Removal",
    "Snapshot",
    "UnparsableOutput",
    "Usage",
    "disk_usage",
    "find_candidates",
    "format_bytes",
    "is_within",
    "mount_point",
    "parse_btrfs_snapshots",
    "parse_docker_reclaimed",
    "parse_journal_vacuum",
    "parse_podman_images",
    "parse_pruned_ids",
    "protected_reason",
    "remove_inside",
]

# Directories that are never a cleanup root as a whole (their subdirectories may be).
PROTECTED_DIRECTORIES = frozenset(
    {
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/proc",
        "/run",
        "/sbin",
        "/sys",
        "/usr",
        "/var",
    }
)


@dataclass(frozen=True)
class Usage:
    """A filesystem's size and free space as statvfs reports them.

    Free is what unprivileged users may still use (f_bavail) and used is size minus
    that, the way node-exporter based alerts compute it (`df` leaves the blocks
    reserved for root out of its Use%, so it shows less).
    """

    path: str
    total_bytes: int
    free_bytes: int

    @property
    def used_bytes(self) -> int:
        return self.total_bytes - self.free_bytes

    @property
    def used_percent(self) -> float:
        return 100.0 * self.used_bytes / self.total_bytes if self.total_bytes else 0.0

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "path": self.path,
            "total_bytes": self.total_bytes,
            "free_bytes": self.free_bytes,
            "used_bytes": self.used_bytes,
            "used_percent": round(self.used_percent, 2),
        }


def disk_usage(path: str | Path) -> Usage:
    """statvfs of the filesystem holding path; `df` counts the same way (f_bavail for free)."""
    result = os.statvfs(path)
    return Usage(
        path=str(path),
        total_bytes=result.f_blocks * result.f_frsize,
        free_bytes=result.f_bavail * result.f_frsize,
    )


def mount_point(path: str | Path) -> str:
    """The mount point of the filesystem holding path (the nearest ancestor that is a mount)."""
    current = Path(os.path.realpath(path))
    while not current.is_mount() and current != current.parent:
        current = current.parent
    return str(current)


def is_within(path: str | Path, root: str | Path) -> bool:
    """Whether path's real location is root's real location or below it."""
    real_root = os.path.realpath(root)
    real_path = os.path.realpath(path)
    return os.path.commonpath([real_root, real_path]) == real_root


def protected_reason(path: str | Path) -> str | None:
    """Why path may not be a cleanup root (relative, `..`, `/` or a system directory), or None."""
    text = str(path)
    if not text.startswith("/"):
        return f"{text!r} is not an absolute path"
    if ".." in PurePosixPath(text).parts:
        return f"{text!r} contains a '..' component"
    for candidate in {os.path.normpath(text), os.path.realpath(text)}:
        if candidate in PROTECTED_DIRECTORIES:
            shown = candidate if candidate == os.path.normpath(text) else f"{text} -> {candidate}"
            return (
                f"refusing {shown}: / and system directories as a whole "
                f"({', '.join(sorted(PROTECTED_DIRECTORIES - {'/'}))}) are never cleanup roots"
            )
    return None


def format_bytes(value: float) -> str:
    """Binary units, one decimal: 1.9 MiB, 512 B."""
    number = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(number) < 1024 or unit == "TiB":
            return f"{int(number)} B" if unit == "B" else f"{number:.1f} {unit}"
        number /= 1024
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Candidate:
    """A file (or empty directory) planned for deletion, with the identity it had when planned."""

    relative: str  # POSIX path below the root, never with '..'
    size: int
    modified: float
    device: int
    inode: int
    directory: bool = False
    links: int = 1

    @property
    def reclaimable(self) -> int:
        """Bytes freed by removing it: none while another hard link keeps the data."""
        return self.size if self.links <= 1 and not self.directory else 0


@dataclass(frozen=True)
class Found:
    """What a glob under a root matched: the eligible candidates and what was passed over, why."""

    root: str  # the root's real path
    candidates: tuple[Candidate, ...]
    passed_over: tuple[tuple[str, str], ...] = field(default=())  # (relative path, reason)


def find_candidates(root: Path, pattern: str) -> Found:
    """Regular files and empty directories matching pattern under root; nothing outside it.

    Symlinks are passed over (neither they nor their targets are ever deleted),
    as are matches whose directory resolves outside the root (a symlinked
    directory named in the pattern) and special files.
    """
    real_root = os.path.realpath(root)
    candidates: list[Candidate] = []
    passed_over: list[tuple[str, str]] = []
    for match in Path(real_root).glob(pattern):
        relative = match.relative_to(real_root)
        if relative == Path() or ".." in relative.parts:
            continue
        name = relative.as_posix()
        if not is_within(match.parent, real_root):
            passed_over.append((name, "its directory resolves outside the root"))
            continue
        try:
            status = match.lstat()
        except FileNotFoundError:
            continue  # gone since the glob listed it
        if stat.S_ISLNK(status.st_mode):
            passed_over.append((name, "a symlink (never followed nor deleted)"))
            continue
        if stat.S_ISDIR(status.st_mode):
            if any(match.iterdir()):
                continue  # directories are deleted only when empty
        elif not stat.S_ISREG(status.st_mode):
            passed_over.append((name, "not a regular file"))
            continue
        candidates.append(
            Candidate(
                relative=name,
                size=status.st_size,
                modified=status.st_mtime,
                device=status.st_dev,
                inode=status.st_ino,
                directory=stat.S_ISDIR(status.st_mode),
                links=status.st_nlink,
            )
        )
    return Found(real_root, tuple(candidates), tuple(passed_over))


@dataclass(frozen=True)
class Removal:
    """The outcome of one planned deletion: removed, or skipped with the reason."""

    relative: str
    removed: bool
    reclaimed: int = 0
    reason: str = ""


_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@contextlib.contextmanager
def _parent_directory(root: str, parts: tuple[str, ...]) -> Iterator[int]:
    """A descriptor of root/parts opened one component at a time, never through a symlink."""
    opened: list[int] = []
    try:
        opened.append(os.open(root, _DIRECTORY_FLAGS))
        for part in parts:
            opened.append(os.open(part, _DIRECTORY_FLAGS, dir_fd=opened[-1]))
        yield opened[-1]
    finally:
        for descriptor in reversed(opened):
            os.close(descriptor)


def remove_inside(root: str, candidate: Candidate) -> Removal:
    """Delete candidate under root if it is still the very file that was planned.

    Re-checks type, device and inode with lstat right before unlinking: a file
    replaced meanwhile (by a symlink, say) is skipped. `unlink` never follows a
    symlink, so a swap in the instant between check and unlink removes at most
    that link, never its target.
    """
    relative = PurePosixPath(candidate.relative)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        return Removal(candidate.relative, False, reason="not a path below the root")
    *parents, name = relative.parts
    try:
        with _parent_directory(root, tuple(parents)) as directory:
            status = os.stat(name, dir_fd=directory, follow_symlinks=False)
            expected_type = stat.S_ISDIR if candidate.directory else stat.S_ISREG
            if not expected_type(status.st_mode) or (status.st_dev, status.st_ino) != (
                candidate.device,
                candidate.inode,
            ):
                return Removal(candidate.relative, False, reason="changed since the plan")
            if candidate.directory:
                os.rmdir(name, dir_fd=directory)  # refuses a directory that is no longer empty
                return Removal(candidate.relative, True)
            os.unlink(name, dir_fd=directory)
            freed = status.st_size if status.st_nlink <= 1 else 0
            return Removal(candidate.relative, True, reclaimed=freed)
    except FileNotFoundError:
        return Removal(candidate.relative, False, reason="already gone")
    except OSError as error:
        # ELOOP/ENOTDIR: a directory on the way became a symlink; ENOTEMPTY; EACCES...
        return Removal(candidate.relative, False, reason=error.strerror or str(error))


# --- what the cleanup tools print -------------------------------------------------------
# Each parser raises UnparsableOutput when the text is not what the tool prints, so the
# playbook reports a failure naming the command instead of guessing a figure.


class UnparsableOutput(ValueError):
    """A tool's output did not have the expected shape."""


_BINARY_FACTORS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}
_DECIMAL_FACTORS = {"": 1, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4, "P": 1000**5}
# systemd's format_bytes(): "0B", "512B", "24.0M" (binary units, one decimal).
_JOURNAL_FREED = re.compile(
    r"^Vacuuming done, freed (?P<number>\d+(?:\.\d+)?)(?P<unit>[KMGTPE]?)B? "
    r"of archived journals from (?P<directory>.+)\.$",
    re.MULTILINE,
)
_JOURNAL_DELETED = re.compile(r"^Deleted archived journal (?P<path>.+) \((?P<size>[^)]+)\)\.$")


@dataclass(frozen=True)
class JournalVacuum:
    freed: int
    deleted: tuple[str, ...]
    directories: tuple[str, ...]


def parse_journal_vacuum(text: str) -> JournalVacuum:
    """Bytes freed by `journalctl --vacuum-size`: one "Vacuuming done" line per directory."""
    freed, directories = 0, []
    for match in _JOURNAL_FREED.finditer(text):
        factor = _BINARY_FACTORS.get(match["unit"], 1024**6)
        freed += int(float(match["number"]) * factor)
        directories.append(match["directory"])
    if not directories:
        raise UnparsableOutput("no 'Vacuuming done, freed ...' line")
    deleted = tuple(
        found["path"]
        for line in text.splitlines()
        if (found := _JOURNAL_DELETED.match(line)) is not None
    )
    return JournalVacuum(freed, deleted, tuple(directories))


# docker's units.HumanSize: "0B", "4.096kB", "23.5MB", "1.234GB" (decimal units).
_DOCKER_TOTAL = re.compile(
    r"^Total(?: reclaimed space)?:\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[kKMGTP]?)B\s*$",
    re.MULTILINE,
)


def parse_docker_reclaimed(text: str) -> int:
    """Bytes from `docker image prune` / `docker builder prune`: their closing 'Total' line."""
    matches = list(_DOCKER_TOTAL.finditer(text))
    if not matches:
        raise UnparsableOutput("no 'Total reclaimed space: ...' line")
    last = matches[-1]
    return int(float(last["number"]) * _DECIMAL_FACTORS[last["unit"].upper()])


_IMAGE_ID = re.compile(r"^[0-9a-f]{64}$")


def parse_pruned_ids(text: str) -> tuple[str, ...]:
    """Image ids `podman image prune -f` removed: one full id per line, nothing else."""
    ids = tuple(line.strip() for line in text.splitlines() if line.strip())
    for line in ids:
        if not _IMAGE_ID.match(line):
            raise UnparsableOutput(f"unexpected line {line[:80]!r} (expected image ids)")
    return ids


@dataclass(frozen=True)
class Image:
    id: str
    size: int
    containers: int = 0  # how many containers use it


def parse_podman_images(text: str) -> tuple[Image, ...]:
    """`podman images --format json`: a JSON array of objects with Id, Size, Containers."""
    import json

    try:
        data = json.loads(text)
        return tuple(
            Image(str(item["Id"]), int(item["Size"]), int(item.get("Containers") or 0))
            for item in data
        )
    except (ValueError, TypeError, KeyError) as error:
        raise UnparsableOutput(f"not a JSON list of images with Id and Size ({error})") from None


@dataclass(frozen=True)
class Snapshot:
    id: int
    created: str  # otime as btrfs prints it, "YYYY-MM-DD HH:MM:SS" or "-"
    path: str  # relative to the filesystem's top level


# btrfs-progs: "ID %llu gen %llu cgen %llu top level %llu otime %s path %s" for -s.
_BTRFS_SNAPSHOT = re.compile(
    r"^ID (?P<id>\d+) gen \d+ cgen \d+ top level \d+ otime (?P<otime>-|\S+ \S+) path (?P<path>.+)$"
)


def parse_btrfs_snapshots(text: str) -> tuple[Snapshot, ...]:
    """`btrfs subvolume list -s -o DIR`: one line per snapshot."""
    snapshots: list[Snapshot] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _BTRFS_SNAPSHOT.match(line)
        if match is None:
            raise UnparsableOutput(f"unexpected line {line[:80]!r}")
        snapshots.append(Snapshot(int(match["id"]), match["otime"], match["path"]))
    return tuple(snapshots)
