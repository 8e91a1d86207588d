"""disk-cleanup: prune unused images, vacuum the journal, delete old files under configured
roots and old btrfs snapshots; report the bytes reclaimed per target and on the mount.

Configured under `playbooks.settings.disk-cleanup` (deleting files is opt-in: no paths
by default; a root is never `/` nor a system directory as a whole):

    images: {enabled: true, engine: auto, build_cache: true, unused: false}
    journal: {enabled: true, max_size: 500M}
    paths:
      - {root: /srv/backups/logs, pattern: "**/*.log", min_age_days: 7, keep_newest: 3}
    btrfs: {snapshots_dir: /mnt/pool/.snapshots, retention: 7}
    threshold_percent: 90

Images: `auto` uses podman, else docker, else skips; dangling images only unless
`unused` (podman's build cache is its intermediate images, pruned with them). The
journal is skipped cleanly without journalctl or a journal directory. verify checks
the mount is below `threshold_percent` afterwards, when set.

The plan reads (never changes) what is there: prunable images, matching files with
their sizes, snapshots; execute deletes exactly the planned files, each re-checked
right before it goes. Each target runs even when another failed.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from remediate.config.models import Model, Settings
from remediate.errors import ConfigError, ParameterError
from remediate.playbooks.base import (
    Action,
    Context,
    Impact,
    Plan,
    Playbook,
    PlaybookTimeout,
    Result,
    Risk,
)
from remediate.system.disk import (
    Candidate,
    Image,
    Snapshot,
    UnparsableOutput,
    Usage,
    disk_usage,
    find_candidates,
    format_bytes,
    mount_point,
    parse_btrfs_snapshots,
    parse_docker_reclaimed,
    parse_journal_vacuum,
    parse_podman_images,
    parse_pruned_ids,
    protected_reason,
    remove_inside,
)

__all__ = ["DiskCleanup", "DiskCleanupParameters", "DiskCleanupSettings", "PathRule"]

JOURNAL_DIRECTORIES = ("/var/log/journal", "/run/log/journal")
LISTED_FILES = 50  # per rule, in the plan's actions and the result's; Plan.data keeps all
DAY = 86400.0
PROBE_TIMEOUT = 15.0
MISSING = 127  # run_process's (and a shell's) code for "no such program"


# --- settings ---------------------------------------------------------------------------


def _checked_root(path: Path) -> Path:
    reason = protected_reason(path)
    if reason is not None:
        raise ValueError(reason)
    return path


class Images(Model):
    enabled: bool = True
    engine: Literal["auto", "podman", "docker"] = "auto"
    # Also images no container uses (`prune --all`), not only dangling ones: they are
    # gone for good where no registry is reachable, so it is off by default.
    unused: bool = False
    build_cache: bool = True
    timeout_seconds: float = Field(600, gt=0)


class Journal(Model):
    enabled: bool = True
    # journalctl's own size syntax: bytes, or K, M, G, T (powers of 1024).
    max_size: str = Field("500M", pattern=r"^[1-9][0-9]*[KMGT]?$")
    # A journal directory other than the system's (passed as --directory).
    directory: Path | None = None
    timeout_seconds: float = Field(300, gt=0)


class PathRule(Model):
    """Files matching pattern below root, older than min_age_days, the newest keep_newest kept."""

    root: Path
    pattern: str = Field("*.log", min_length=1, max_length=1024)
    min_age_days: float = Field(7, ge=0)
    keep_newest: int = Field(0, ge=0)

    @field_validator("root")
    @classmethod
    def _allowed_root(cls, root: Path) -> Path:
        return _checked_root(root)

    @field_validator("pattern")
    @classmethod
    def _relative(cls, pattern: str) -> str:
        if pattern.startswith("/"):
            raise ValueError(f"{pattern!r} must be relative to the root")
        if ".." in PurePosixPath(pattern).parts:
            raise ValueError(f"{pattern!r} contains a '..' component")
        if any(ord(character) < 32 for character in pattern):
            raise ValueError("the pattern contains control characters")
        return pattern


class Btrfs(Model):
    snapshots_dir: Path | None = None
    retention: int = Field(7, ge=1)
    timeout_seconds: float = Field(300, gt=0)

    @field_validator("snapshots_dir")
    @classmethod
    def _checked(cls, path: Path | None) -> Path | None:
        return None if path is None else _checked_root(path)


class DiskCleanupSettings(Model):
    images: Images = Images()
    journal: Journal = Journal()
    paths: tuple[PathRule, ...] = ()
    btrfs: Btrfs = Btrfs()
    threshold_percent: float | None = Field(None, gt=0, le=100)
    timeout_seconds: float = Field(900, gt=0)


class DiskCleanupParameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mount: str = Field(
        "/",
        max_length=4096,
        description="a path on the filesystem the alert is about (e.g. its mountpoint label)",
    )

    @field_validator("mount")
    @classmethod
    def _safe_path(cls, mount: str) -> str:
        if any(ord(character) < 32 or ord(character) == 127 for character in mount):
            raise ValueError("the path contains control characters")
        if not mount.startswith("/"):
            raise ValueError("must be an absolute path")
        if ".." in PurePosixPath(mount).parts:
            raise ValueError("must not contain a '..' component")
        return mount


# --- what the plan carries to execute ---------------------------------------------------


@dataclass(frozen=True)
class ImageWork:
    engine: str
    commands: tuple[tuple[str, ...], ...]
    timeout: float
    listing: tuple[str, ...] = ()  # podman: lists the images with their sizes
    candidates: tuple[Image, ...] = ()  # podman: what the prune should take, as planned


@dataclass(frozen=True)
class JournalWork:
    argv: tuple[str, ...]
    timeout: float


@dataclass(frozen=True)
class FileWork:
    """One path rule's planned deletions."""

    index: int
    root: str  # as configured
    real_root: str
    pattern: str
    delete: tuple[Candidate, ...]
    kept_newest: int = 0
    too_new: int = 0
    passed_over: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SnapshotWork:
    directory: str
    delete: tuple[Snapshot, ...]
    kept: int
    timeout: float


@dataclass(frozen=True)
class Work:
    mount: str
    images: ImageWork | None = None
    journal: JournalWork | None = None
    files: tuple[FileWork, ...] = ()
    snapshots: SnapshotWork | None = None
    skipped: tuple[tuple[str, str], ...] = ()  # (target, reason): a clean skip
    problems: tuple[tuple[str, str], ...] = ()  # (target, reason): reported as failures


@dataclass
class Outcome:
    """One target's share of the result."""

    target: str  # the impact's subject: images, journal, btrfs or the root
    key: str = ""  # where details keep it; path rules may share a root: paths[i]
    ok: bool = True
    summary: str = ""
    reclaimed: int | None = None
    timed_out: bool = False
    output: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def fail(self, reason: str) -> Outcome:
        self.ok = False
        self.summary = reason
        self.errors.append(reason)
        return self


# --- the playbook -----------------------------------------------------------------------


class DiskCleanup(Playbook):
    """Free disk space: images, journal, old files under configured roots, btrfs snapshots.

    From the shell: `remediate run disk-cleanup -p mount=/srv --dry-run`.
    """

    name: ClassVar[str] = "disk-cleanup"
    description: ClassVar[str] = (
        "Prune unused container images and build cache, vacuum the journal, delete files "
        "past an age under configured roots (never outside them), prune old btrfs "
        "snapshots; reports bytes reclaimed"
    )
    risk: ClassVar[Risk] = "low"
    requires_confirmation: ClassVar[bool] = False
    Parameters = DiskCleanupParameters

    def __init__(self, config: DiskCleanupSettings | None = None) -> None:
        self.config = config or DiskCleanupSettings()
        self.timeout = self.config.timeout_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> DiskCleanup:
        """Validate this playbook's section; errors name the field, e.g. `paths[0].root`."""
        raw = settings.playbooks.settings.get(cls.name, {})
        try:
            return cls(DiskCleanupSettings.model_validate(raw))
        except ValidationError as error:
            first = error.errors()[0]
            where = "".join(
                f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]
            )
            reason = str(first["msg"]).removeprefix("Value error, ")
            raise ConfigError(reason, field=f"playbooks.settings.{cls.name}{where}") from None

    def parse_parameters(self, raw: Mapping[str, Any]) -> BaseModel:
        params = super().parse_parameters(raw)
        assert isinstance(params, DiskCleanupParameters)
        if not Path(params.mount).exists():
            raise ParameterError(self.name, "mount", f"{params.mount!r} does not exist")
        return params

    def target(self, params: BaseModel) -> str:
        assert isinstance(params, DiskCleanupParameters)
        return params.mount

    # --- plan ---------------------------------------------------------------------------

    def plan(self, ctx: Context, params: BaseModel) -> Plan:
        """Find what would go: nothing is changed, only listed (images, files, snapshots)."""
        assert isinstance(params, DiskCleanupParameters)
        skipped: list[tuple[str, str]] = []
        problems: list[tuple[str, str]] = []
        images = self._plan_images(ctx, skipped, problems)
        journal = self._plan_journal(ctx, skipped)
        files = tuple(
            rule_work
            for index, rule in enumerate(self.config.paths)
            if (rule_work := _plan_files(ctx, index, rule, problems)) is not None
        )
        snapshots = self._plan_snapshots(ctx, problems)
        work = Work(
            params.mount, images, journal, files, snapshots, tuple(skipped), tuple(problems)
        )
        return Plan(_actions(work, ctx.clock.now()), summary=_plan_summary(work), data=_data(work))

    def _plan_images(
        self, ctx: Context, skipped: list[tuple[str, str]], problems: list[tuple[str, str]]
    ) -> ImageWork | None:
        settings = self.config.images
        if not settings.enabled:
            skipped.append(("images", "disabled in the settings"))
            return None
        engine: str = settings.engine
        if engine == "auto":
            found = next((name for name in ("podman", "docker") if _exists(ctx, name)), None)
            if found is None:
                skipped.append(("images", "neither podman nor docker is installed"))
                return None
            engine = found
        unused = ("--all",) if settings.unused else ()
        if engine == "podman":
            # podman keeps its build cache as intermediate images: `image prune` takes them.
            listing_argv: tuple[str, ...] = ("podman", "images", "--format", "json")
            if not settings.unused:
                listing_argv = ("podman", "images", "--filter", "dangling=true", "--format", "json")
            listing = ctx.run(listing_argv, timeout=PROBE_TIMEOUT)
            candidates: tuple[Image, ...] = ()
            if listing.ok:
                try:
                    candidates = tuple(
                        image
                        for image in parse_podman_images(listing.stdout)
                        if image.containers == 0
                    )
                except UnparsableOutput as error:
                    problems.append(("images", f"podman images: {error}"))
            prune = (("podman", "image", "prune", *unused, "-f"),)
            return ImageWork("podman", prune, settings.timeout_seconds, listing_argv, candidates)
        commands: list[tuple[str, ...]] = [("docker", "image", "prune", *unused, "-f")]
        if settings.build_cache:
            commands.append(("docker", "builder", "prune", "-f"))
        return ImageWork("docker", tuple(commands), settings.timeout_seconds)

    def _plan_journal(self, ctx: Context, skipped: list[tuple[str, str]]) -> JournalWork | None:
        settings = self.config.journal
        if not settings.enabled:
            skipped.append(("journal", "disabled in the settings"))
            return None
        directories = (
            (str(settings.directory),) if settings.directory is not None else JOURNAL_DIRECTORIES
        )
        if not any(Path(directory).is_dir() for directory in directories):
            skipped.append(("journal", f"no journal directory ({', '.join(directories)})"))
            return None
        if not _exists(ctx, "journalctl"):
            skipped.append(("journal", "journalctl is not installed"))
            return None
        argv = ["journalctl"]
        if settings.directory is not None:
            argv.append(f"--directory={settings.directory}")
        argv.append(f"--vacuum-size={settings.max_size}")
        return JournalWork(tuple(argv), settings.timeout_seconds)

    def _plan_snapshots(self, ctx: Context, problems: list[tuple[str, str]]) -> SnapshotWork | None:
        settings = self.config.btrfs
        if settings.snapshots_dir is None:
            return None
        directory = str(settings.snapshots_dir)
        if not Path(directory).is_dir():
            problems.append(("btrfs", f"{directory} is not a directory"))
            return None
        listing = ctx.run(["btrfs", "subvolume", "list", "-s", "-o", directory], timeout=60)
        if listing.returncode == MISSING:
            problems.append(("btrfs", "btrfs not found: apt-get install btrfs-progs"))
            return None
        if not listing.ok:
            problems.append(("btrfs", _failed("btrfs subvolume list", listing.stderr)))
            return None
        try:
            listed = parse_btrfs_snapshots(listing.stdout)
        except UnparsableOutput as error:
            problems.append(("btrfs", f"could not parse `btrfs subvolume list` output: {error}"))
            return None
        snapshots = _snapshots_in(directory, listed)
        # Oldest first; a snapshot without a creation time ("-") counts as newest: kept.
        ordered = sorted(snapshots, key=lambda s: (s.created == "-", s.created, s.id))
        excess = max(0, len(ordered) - settings.retention)
        return SnapshotWork(
            directory, tuple(ordered[:excess]), len(ordered) - excess, settings.timeout_seconds
        )

    # --- execute ------------------------------------------------------------------------

    def execute(self, ctx: Context, plan: Plan, params: BaseModel) -> Result:
        assert isinstance(params, DiskCleanupParameters)
        work = plan.data.get("work")
        if not isinstance(work, Work):
            raise TypeError("disk-cleanup executes only a plan it made")
        before = disk_usage(work.mount)
        outcomes: list[Outcome] = [Outcome(target).fail(reason) for target, reason in work.problems]
        for step in _steps(work):
            outcome = step(ctx)
            outcomes.append(outcome)
            if outcome.timed_out:
                break
        after = disk_usage(work.mount)
        return _result(ctx, work, outcomes, before, after)

    def verify(self, ctx: Context, params: BaseModel, result: Result) -> Result:
        """With threshold_percent set, the mount must be below it afterwards."""
        assert isinstance(params, DiskCleanupParameters)
        threshold = self.config.threshold_percent
        if threshold is None or result.status != "success":
            return result
        usage = disk_usage(params.mount)
        details = {**result.details, "threshold_percent": threshold}
        if usage.used_percent < threshold:
            return _replace(result, details=details)
        return _replace(
            result,
            status="failure",
            summary=f"{result.summary}; {params.mount} is still {usage.used_percent:.1f}% "
            f"used, not below the {threshold:g}% threshold",
            details=details,
        )


# --- planning helpers -------------------------------------------------------------------


def _exists(ctx: Context, program: str) -> bool:
    """Whether program runs here; asked through the runner so tests can replay it."""
    return ctx.run([program, "--version"], timeout=PROBE_TIMEOUT).returncode != MISSING


def _plan_files(
    ctx: Context, index: int, rule: PathRule, problems: list[tuple[str, str]]
) -> FileWork | None:
    root = str(rule.root)
    # Checked again now: the root (or a symlink on its way) may have changed since load.
    reason = protected_reason(root)
    if reason is None and not rule.root.is_dir():
        reason = f"{root} is not an existing directory"
    if reason is not None:
        problems.append((root, reason))
        return None
    found = find_candidates(rule.root, rule.pattern)
    newest_first = sorted(found.candidates, key=lambda c: (-c.modified, c.relative))
    kept, rest = newest_first[: rule.keep_newest], newest_first[rule.keep_newest :]
    oldest = ctx.clock.now() - rule.min_age_days * DAY
    delete = tuple(sorted((c for c in rest if c.modified <= oldest), key=lambda c: c.relative))
    return FileWork(
        index=index,
        root=root,
        real_root=found.root,
        pattern=rule.pattern,
        delete=delete,
        kept_newest=len(kept),
        too_new=len(rest) - len(delete),
        passed_over=found.passed_over,
    )


def _snapshots_in(directory: str, listed: Sequence[Snapshot]) -> list[Snapshot]:
    """Listed snapshots that are directories directly in directory, matched by unique name.

    `-o` lists every snapshot of the subvolume holding directory, with paths from the
    filesystem's top level, so a name is trusted only when it is unique in the listing
    and present here; anything ambiguous is left alone.
    """
    by_name: dict[str, list[Snapshot]] = {}
    for snapshot in listed:
        by_name.setdefault(PurePosixPath(snapshot.path).name, []).append(snapshot)
    present: list[Snapshot] = []
    for name, matches in by_name.items():
        entry = Path(directory) / name
        if len(matches) == 1 and entry.is_dir() and not entry.is_symlink():
            present.append(matches[0])
    return present


def _actions(work: Work, now: float) -> tuple[Action, ...]:
    actions: list[Action] = []
    if work.images is not None:
        images = work.images
        for argv in images.commands:
            what = "build cache" if "builder" in argv else "dangling images"
            if "--all" in argv:
                what = "unused images"
            if images.engine == "podman":
                size = format_bytes(sum(image.size for image in images.candidates))
                what += f" ({len(images.candidates)} now, {size})"
            actions.append(Action(f"prune {images.engine} {what}", argv=argv))
    if work.journal is not None:
        actions.append(Action("vacuum the journal", argv=work.journal.argv))
    for rule in work.files:
        for candidate in rule.delete[:LISTED_FILES]:
            age = (now - candidate.modified) / DAY
            kind = "empty directory" if candidate.directory else format_bytes(candidate.size)
            path = _joined(rule.root, candidate.relative)
            actions.append(Action(f"delete {path} ({kind}, {age:.1f} days old)"))
        hidden = rule.delete[LISTED_FILES:]
        if hidden:
            size = format_bytes(sum(candidate.size for candidate in hidden))
            actions.append(Action(f"delete {len(hidden)} more under {rule.root} ({size})"))
        for relative, reason in rule.passed_over[:LISTED_FILES]:
            actions.append(Action(f"leave {_joined(rule.root, relative)} alone: {reason}"))
        if not rule.delete:
            actions.append(
                Action(
                    f"nothing to delete under {rule.root} matching {rule.pattern!r} "
                    f"({rule.kept_newest} kept as newest, {rule.too_new} too new)"
                )
            )
    if work.snapshots is not None:
        directory = work.snapshots.directory
        for snapshot in work.snapshots.delete:
            path = _joined(directory, PurePosixPath(snapshot.path).name)
            actions.append(
                Action(
                    f"delete btrfs snapshot created {snapshot.created}",
                    argv=("btrfs", "subvolume", "delete", path),
                )
            )
        if not work.snapshots.delete:
            actions.append(Action(f"keep all {work.snapshots.kept} snapshots in {directory}"))
    actions.extend(Action(f"skip {target}: {reason}") for target, reason in work.skipped)
    actions.extend(Action(f"cannot clean {target}: {reason}") for target, reason in work.problems)
    return tuple(actions)


def _plan_summary(work: Work) -> str:
    parts: list[str] = []
    if work.images is not None:
        parts.append(f"images: prune with {work.images.engine}")
    if work.journal is not None:
        parts.append("journal: vacuum")
    for rule in work.files:
        size = format_bytes(sum(candidate.size for candidate in rule.delete))
        parts.append(f"{rule.root}: {len(rule.delete)} to delete ({size})")
    if work.snapshots is not None:
        parts.append(f"btrfs: {len(work.snapshots.delete)} snapshot(s) to delete")
    parts.extend(f"{target}: skipped ({reason})" for target, reason in work.skipped)
    parts.extend(f"{target}: cannot clean ({reason})" for target, reason in work.problems)
    listed = [
        f"{_joined(rule.root, candidate.relative)} ({format_bytes(candidate.size)})"
        for rule in work.files
        for candidate in rule.delete
    ]
    summary = f"on {work.mount}: " + "; ".join(parts or ["nothing configured"])
    if listed:
        more = f", and {len(listed) - 20} more" if len(listed) > 20 else ""
        summary += "\nfiles: " + ", ".join(listed[:20]) + more
    return summary


def _data(work: Work) -> dict[str, Any]:
    """The plan's data: the typed work for execute, and every file listed for people."""
    return {
        "work": work,
        "files": [
            {
                "path": _joined(rule.root, candidate.relative),
                "size": candidate.size,
                "modified": candidate.modified,
            }
            for rule in work.files
            for candidate in rule.delete
        ],
    }


# --- execution helpers ------------------------------------------------------------------


def _steps(work: Work) -> list[Callable[[Context], Outcome]]:
    """The targets in order: images, journal, each path rule, snapshots."""
    steps: list[Callable[[Context], Outcome]] = []
    if work.images is not None:
        steps.append(functools.partial(_prune_images, work=work.images))
    if work.journal is not None:
        steps.append(functools.partial(_vacuum_journal, work=work.journal))
    steps.extend(functools.partial(_delete_files, work=rule) for rule in work.files)
    if work.snapshots is not None:
        steps.append(functools.partial(_delete_snapshots, work=work.snapshots))
    return steps


def _prune_images(ctx: Context, work: ImageWork) -> Outcome:
    outcome = Outcome("images")
    try:
        sizes = {image.id: image.size for image in work.candidates}
        if work.engine == "podman":
            sizes.update(_sizes_now(ctx, work.listing))
        reclaimed = 0
        for argv in work.commands:
            completed = ctx.run(argv, timeout=work.timeout)
            command = " ".join(argv)
            outcome.output.append(completed.stdout)
            if not completed.ok:
                return outcome.fail(_failed(command, completed.stderr, completed.returncode))
            try:
                if work.engine == "podman":
                    removed = parse_pruned_ids(completed.stdout)
                    freed = sum(sizes.get(image_id, 0) for image_id in removed)
                    ctx.log.append(f"{command}: removed {len(removed)} image(s)")
                    outcome.details["removed"] = list(removed)
                else:
                    freed = parse_docker_reclaimed(completed.stdout)
                    ctx.log.append(f"{command}: reclaimed {format_bytes(freed)}")
            except UnparsableOutput as error:
                return outcome.fail(f"could not parse the output of `{command}`: {error}")
            reclaimed += freed
    except PlaybookTimeout as error:
        outcome.timed_out = True
        return outcome.fail(str(error))
    outcome.reclaimed = reclaimed
    outcome.summary = f"{format_bytes(reclaimed)} reclaimed with {work.engine}"
    return outcome


def _sizes_now(ctx: Context, argv: tuple[str, ...]) -> dict[str, int]:
    """Image sizes right before the prune (more may have become prunable since the plan)."""
    listing = ctx.run(argv, timeout=PROBE_TIMEOUT)
    if not listing.ok:
        return {}
    try:
        return {image.id: image.size for image in parse_podman_images(listing.stdout)}
    except UnparsableOutput:
        return {}


def _vacuum_journal(ctx: Context, work: JournalWork) -> Outcome:
    outcome = Outcome("journal")
    command = " ".join(work.argv)
    try:
        completed = ctx.run(work.argv, timeout=work.timeout)
    except PlaybookTimeout as error:
        outcome.timed_out = True
        return outcome.fail(str(error))
    # journalctl logs its vacuum report to stderr.
    outcome.output.append(completed.stderr)
    if not completed.ok:
        return outcome.fail(_failed(command, completed.stderr, completed.returncode))
    try:
        vacuum = parse_journal_vacuum(completed.stderr + "\n" + completed.stdout)
    except UnparsableOutput as error:
        return outcome.fail(f"could not parse the output of `{command}`: {error}")
    ctx.log.append(f"{command}: freed {format_bytes(vacuum.freed)}")
    outcome.reclaimed = vacuum.freed
    outcome.summary = (
        f"{format_bytes(vacuum.freed)} freed, {len(vacuum.deleted)} archived file(s) deleted"
    )
    outcome.details = {"deleted": list(vacuum.deleted), "directories": list(vacuum.directories)}
    return outcome


def _delete_files(ctx: Context, work: FileWork) -> Outcome:
    """Delete exactly the planned files, each re-validated; stop (reporting) at the deadline."""
    outcome = Outcome(work.root, key=f"paths[{work.index}]")
    real_root = os.path.realpath(work.root)
    reason = protected_reason(work.root)
    if reason is None and real_root != work.real_root:
        reason = f"{work.root} now resolves to {real_root}, not {work.real_root} as planned"
    if reason is not None:
        return outcome.fail(reason)
    reclaimed, removed, skipped = 0, 0, []
    for candidate in work.delete:
        if ctx.remaining() <= 0:
            outcome.timed_out = True
            outcome.errors.append(f"the playbook's timeout passed while deleting in {work.root}")
            break
        removal = remove_inside(work.real_root, candidate)
        path = _joined(work.root, candidate.relative)
        if removal.removed:
            removed += 1
            reclaimed += removal.reclaimed
            if removed <= LISTED_FILES:
                ctx.log.append(f"deleted {path} ({format_bytes(removal.reclaimed)})")
        else:
            skipped.append({"path": path, "reason": removal.reason})
    if removed > LISTED_FILES:
        ctx.log.append(f"deleted {removed - LISTED_FILES} more under {work.root}")
    outcome.ok = not outcome.timed_out
    outcome.reclaimed = reclaimed
    outcome.summary = f"{removed} deleted ({format_bytes(reclaimed)})" + (
        f", {len(skipped)} skipped (changed since the plan)" if skipped else ""
    )
    outcome.details = {
        "root": work.root,
        "pattern": work.pattern,
        "deleted": removed,
        "skipped": skipped[:LISTED_FILES],
        "kept_newest": work.kept_newest,
        "too_new": work.too_new,
        "passed_over": [{"path": p, "reason": r} for p, r in work.passed_over[:LISTED_FILES]],
    }
    return outcome


def _delete_snapshots(ctx: Context, work: SnapshotWork) -> Outcome:
    """`btrfs subvolume delete` each planned snapshot; bytes are the statvfs change seen
    right after (btrfs frees space in the background, so this may undercount)."""
    outcome = Outcome("btrfs")
    before = disk_usage(work.directory)
    deleted: list[str] = []
    try:
        for snapshot in work.delete:
            path = _joined(work.directory, PurePosixPath(snapshot.path).name)
            argv = ("btrfs", "subvolume", "delete", path)
            completed = ctx.run(argv, timeout=work.timeout)
            outcome.output.append(completed.stdout)
            if completed.ok:
                deleted.append(path)
                ctx.log.append(f"btrfs subvolume delete {path}")
            else:
                outcome.fail(_failed(f"btrfs subvolume delete {path}", completed.stderr))
    except PlaybookTimeout as error:
        outcome.timed_out = True
        outcome.fail(str(error))
    after = disk_usage(work.directory)
    outcome.reclaimed = max(0, after.free_bytes - before.free_bytes)
    failed = len(work.delete) - len(deleted)
    outcome.summary = f"{len(deleted)} snapshot(s) deleted, {work.kept} kept" + (
        f", {failed} failed: {'; '.join(outcome.errors)}" if failed else ""
    )
    outcome.details = {"deleted": deleted, "kept": work.kept}
    return outcome


def _result(
    ctx: Context, work: Work, outcomes: list[Outcome], before: Usage, after: Usage
) -> Result:
    per_subject: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.reclaimed is not None:
            per_subject[outcome.target] = per_subject.get(outcome.target, 0) + outcome.reclaimed
    impacts = tuple(
        Impact("bytes_reclaimed", value, subject) for subject, value in per_subject.items()
    )
    total = sum(int(impact.value) for impact in impacts)
    status: Literal["success", "failure", "timeout"] = "success"
    if any(outcome.timed_out for outcome in outcomes):
        status = "timeout"
    elif not all(outcome.ok for outcome in outcomes):
        status = "failure"
    parts = [f"{outcome.target}: {outcome.summary}" for outcome in outcomes]
    parts.extend(f"{target}: skipped ({reason})" for target, reason in work.skipped)
    summary = (
        f"reclaimed {format_bytes(total)}; {work.mount} {before.used_percent:.1f}% -> "
        f"{after.used_percent:.1f}% used; " + "; ".join(parts)
    )
    return Result(
        status,
        summary=summary,
        actions=tuple(ctx.log),
        impacts=impacts,
        stdout="\n".join(text for outcome in outcomes for text in outcome.output if text),
        stderr="\n".join(error for outcome in outcomes for error in outcome.errors),
        details={
            "mount": work.mount,
            "mount_point": mount_point(work.mount),
            "before": before.as_dict(),
            "after": after.as_dict(),
            "freed_on_mount_bytes": after.free_bytes - before.free_bytes,
            "reclaimed_bytes": total,
            "targets": {
                (outcome.key or outcome.target): {
                    "ok": outcome.ok,
                    "summary": outcome.summary,
                    "reclaimed_bytes": outcome.reclaimed,
                    **outcome.details,
                }
                for outcome in outcomes
            },
            "skipped": {target: reason for target, reason in work.skipped},
        },
    )


def _replace(result: Result, **changes: Any) -> Result:
    import dataclasses

    return dataclasses.replace(result, **changes)


def _joined(directory: str, relative: str) -> str:
    return str(Path(directory) / relative)


def _failed(command: str, stderr: str, returncode: int | None = None) -> str:
    code = f" exited {returncode}" if returncode is not None else " failed"
    last = stderr.strip().splitlines()[-1] if stderr.strip() else "no error output"
    return f"{command}{code}: {last}"
