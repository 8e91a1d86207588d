"""disk-cleanup on a real temporary filesystem; commands that cannot run here (a Docker
engine, btrfs, a journal with archived files) replay recorded output (tests/fixtures/disk)."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from remediate.cli import main
from remediate.clock import ManualClock
from remediate.config.models import Settings
from remediate.errors import ConfigError, ParameterError
from remediate.playbooks.base import Context, Plan, Result
from remediate.playbooks.disk_cleanup import DiskCleanup
from remediate.system.process import Completed

FIXTURES = Path(__file__).parent.parent / "fixtures" / "disk"
NOW = 1_766_570_400.0  # 2025-12-24T10:00:00Z
DAY = 86400.0
QUIET = {"images": {"enabled": False}, "journal": {"enabled": False}}
PODMAN_LIST = ("podman", "images", "--filter", "dangling=true", "--format", "json")


def recorded(name: str) -> str:
    return (FIXTURES / name).read_text()


def completed(argv: Sequence[str], stdout: str = "", stderr: str = "", code: int = 0) -> Completed:
    return Completed(tuple(argv), code, stdout, stderr, 0.01)


def missing(argv: Sequence[str]) -> Completed:
    """What run_process answers for a program that is not installed."""
    return completed(argv, stderr=f"{argv[0]}: No such file or directory", code=127)


@dataclass
class Replay:
    """A ProcessRunner answering from recorded output; any other command fails the test."""

    answers: dict[tuple[str, ...], Completed] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def __call__(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        input: str | None = None,
    ) -> Completed:
        key = tuple(argv)
        self.calls.append(key)
        if key not in self.answers:
            raise AssertionError(f"unexpected command {key}")
        return self.answers[key]

    def answer(self, *results: Completed) -> Replay:
        for result in results:
            self.answers[result.argv] = result
        return self


def playbook_with(**section: Any) -> DiskCleanup:
    settings = Settings.model_validate({"playbooks": {"settings": {"disk-cleanup": section}}})
    return DiskCleanup.from_settings(settings)


def context(runner: Replay | None = None) -> Context:
    return Context(
        settings=Settings(),
        runner=runner or Replay(),
        clock=ManualClock(NOW),
        deadline=time.monotonic() + 60,
    )


def run(playbook: DiskCleanup, ctx: Context, **parameters: str) -> tuple[Plan, Result]:
    params = playbook.parse_parameters(parameters)
    plan = playbook.plan(ctx, params)
    result = playbook.execute(ctx, plan, params)
    return plan, playbook.verify(ctx, params, result)


def write(path: Path, size: int, age_days: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (NOW - age_days * DAY, NOW - age_days * DAY))
    return path


def commands(plan: Plan) -> list[tuple[str, ...]]:
    return [action.argv for action in plan.actions if action.argv is not None]


def reclaimed(result: Result) -> dict[str, float]:
    return {impact.subject: impact.value for impact in result.impacts}


# --- files under a root -----------------------------------------------------------------


def test_old_files_are_deleted_and_new_ones_kept_with_bytes_equal_to_their_sizes(
    tmp_path: Path,
) -> None:
    root = tmp_path / "logs"
    old = [write(root / "a.log", 1000, 10), write(root / "nested" / "b.log", 2345, 30)]
    new = [write(root / "c.log", 500, 2), write(root / "old.txt", 700, 40)]
    playbook = playbook_with(**QUIET, paths=[{"root": str(root), "pattern": "**/*.log"}])

    _, result = run(playbook, context(), mount=str(tmp_path))

    assert result.status == "success"
    assert [path.exists() for path in old] == [False, False]
    assert [path.exists() for path in new] == [True, True]
    assert reclaimed(result) == {str(root): 3345}
    assert result.details["targets"]["paths[0]"]["deleted"] == 2
    assert f"deleted {root / 'a.log'} (1000 B)" in result.actions


def test_keep_newest_keeps_the_newest_matches_even_when_they_are_old(tmp_path: Path) -> None:
    root = tmp_path / "backups"
    files = [write(root / f"dump-{age}.sql", 100, age) for age in (8, 9, 10, 11, 12)]
    playbook = playbook_with(
        **QUIET, paths=[{"root": str(root), "pattern": "*.sql", "keep_newest": 2}]
    )

    _, result = run(playbook, context(), mount=str(tmp_path))

    assert [path.exists() for path in files] == [True, True, False, False, False]
    assert reclaimed(result) == {str(root): 300}
    assert result.details["targets"]["paths[0]"]["kept_newest"] == 2


def test_the_plan_changes_nothing_and_lists_every_file_with_its_size(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    files = [write(root / f"app-{number:03}.log", number + 1, 20) for number in range(60)]
    playbook = playbook_with(**QUIET, paths=[{"root": str(root)}])
    ctx = context()

    plan = playbook.plan(ctx, playbook.parse_parameters({"mount": str(tmp_path)}))

    assert all(path.exists() for path in files)
    listed = {entry["path"]: entry["size"] for entry in plan.data["files"]}
    assert listed == {str(path): path.stat().st_size for path in files}
    descriptions = [action.description for action in plan.actions]
    assert f"delete {files[0]} (1 B, 20.0 days old)" in descriptions
    assert f"delete 10 more under {root} (555 B)" in descriptions
    assert "60 to delete (1.8 KiB)" in plan.summary and ", and 40 more" in plan.summary


def test_a_symlink_pointing_outside_the_root_is_never_followed_nor_its_target_deleted(
    tmp_path: Path,
) -> None:
    root = tmp_path / "logs"
    outside = write(tmp_path / "precious" / "data.log", 4096, 90)
    write(root / "real.log", 10, 90)
    (root / "escape.log").symlink_to(outside)
    (root / "linked").symlink_to(outside.parent, target_is_directory=True)
    playbook = playbook_with(
        **QUIET,
        paths=[
            {"root": str(root), "pattern": "**/*.log", "min_age_days": 0},
            {"root": str(root), "pattern": "linked/*.log", "min_age_days": 0},
        ],
    )

    plan, result = run(playbook, context(), mount=str(tmp_path))

    assert outside.read_bytes() == b"x" * 4096
    assert (root / "escape.log").is_symlink()
    assert not (root / "real.log").exists()
    assert [entry["path"] for entry in plan.data["files"]] == [str(root / "real.log")]
    left_alone = [a.description for a in plan.actions if a.description.startswith("leave")]
    assert f"leave {root / 'escape.log'} alone: a symlink (never followed nor deleted)" in (
        left_alone
    )
    assert (
        f"leave {root / 'linked' / 'data.log'} alone: its directory resolves outside the root"
        in left_alone
    )
    assert reclaimed(result) == {str(root): 10}


def test_a_file_replaced_by_a_symlink_after_the_plan_is_skipped(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    planned = write(root / "app.log", 100, 20)
    outside = write(tmp_path / "elsewhere.log", 50, 20)
    playbook = playbook_with(**QUIET, paths=[{"root": str(root)}])
    ctx = context()
    params = playbook.parse_parameters({"mount": str(tmp_path)})
    plan = playbook.plan(ctx, params)
    planned.unlink()
    planned.symlink_to(outside)

    result = playbook.execute(ctx, plan, params)

    assert outside.exists() and planned.is_symlink()
    assert result.details["targets"]["paths[0]"]["skipped"] == [
        {"path": str(planned), "reason": "changed since the plan"}
    ]
    assert reclaimed(result) == {str(root): 0}


def test_a_directory_swapped_for_a_symlink_after_the_plan_is_not_followed(
    tmp_path: Path,
) -> None:
    root = tmp_path / "logs"
    write(root / "sub" / "app.log", 100, 20)
    outside = write(tmp_path / "precious" / "app.log", 100, 20)
    playbook = playbook_with(**QUIET, paths=[{"root": str(root), "pattern": "sub/*.log"}])
    ctx = context()
    params = playbook.parse_parameters({"mount": str(tmp_path)})
    plan = playbook.plan(ctx, params)
    (root / "sub").rename(root / "moved")
    (root / "sub").symlink_to(outside.parent, target_is_directory=True)

    result = playbook.execute(ctx, plan, params)

    assert outside.exists()
    [skipped] = result.details["targets"]["paths[0]"]["skipped"]
    assert skipped["path"] == str(root / "sub" / "app.log")
    assert reclaimed(result) == {str(root): 0}


def test_empty_directories_that_match_are_removed_but_never_full_ones(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    (root / "empty").mkdir(parents=True)
    write(root / "full" / "keep.bin", 10, 0)
    for directory in ("empty", "full"):
        os.utime(root / directory, (NOW - 30 * DAY, NOW - 30 * DAY))
    playbook = playbook_with(**QUIET, paths=[{"root": str(root), "pattern": "*"}])

    _, result = run(playbook, context(), mount=str(tmp_path))

    assert not (root / "empty").exists()
    assert (root / "full" / "keep.bin").exists()
    assert result.details["targets"]["paths[0]"]["deleted"] == 1


# --- what is refused before anything runs -----------------------------------------------


@pytest.mark.parametrize(
    "root",
    ["/", "/etc", "/usr/", "/var", "/var/../etc", "relative/logs", "symlink-to-usr"],
    ids=["slash", "etc", "usr-trailing-slash", "var", "dotdot", "relative", "symlink"],
)
def test_a_root_that_is_slash_or_a_system_directory_is_refused_at_config_load(
    tmp_path: Path, root: str
) -> None:
    if root == "symlink-to-usr":
        (tmp_path / "link").symlink_to("/usr")
        root = str(tmp_path / "link")

    with pytest.raises(ConfigError) as raised:
        playbook_with(paths=[{"root": str(tmp_path)}, {"root": root}])

    assert raised.value.field == "playbooks.settings.disk-cleanup.paths[1].root"


@pytest.mark.parametrize("pattern", ["../*.log", "logs/../../etc/*", "/etc/*", ".."])
def test_a_pattern_that_climbs_out_of_the_root_is_refused(tmp_path: Path, pattern: str) -> None:
    with pytest.raises(ConfigError) as raised:
        playbook_with(paths=[{"root": str(tmp_path), "pattern": pattern}])

    assert raised.value.field == "playbooks.settings.disk-cleanup.paths[0].pattern"


def test_config_check_names_the_refused_root(
    tmp_path: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "remediate.yml"
    config.write_text(
        f"state: {{directory: {tmp_path / 'state'}}}\n"
        "playbooks:\n  settings:\n    disk-cleanup:\n      paths: [{root: /}]\n"
    )

    code = main(["-c", str(config), "config", "check"])

    assert code == 2
    error = capsys.readouterr().err
    assert "playbooks.settings.disk-cleanup.paths[0].root" in error and "refusing /" in error


@pytest.mark.parametrize(
    "mount",
    ["relative/path", "/tmp/../etc", "/tmp/\nx", f"/nonexistent-{uuid.uuid4().hex}"],
    ids=["relative", "dotdot", "control-character", "missing"],
)
def test_a_bad_mount_parameter_is_refused_before_anything_runs(mount: str) -> None:
    runner = Replay()
    with pytest.raises(ParameterError) as raised:
        run(playbook_with(), context(runner), mount=mount)

    assert raised.value.parameter == "mount"
    assert runner.calls == []


# --- journal ----------------------------------------------------------------------------


def test_the_journal_vacuum_reports_the_bytes_journalctl_freed(tmp_path: Path) -> None:
    (tmp_path / "journal").mkdir()
    vacuum = ("journalctl", f"--directory={tmp_path / 'journal'}", "--vacuum-size=200M")
    runner = Replay().answer(
        completed(["journalctl", "--version"], recorded("journalctl-version.stdout")),
        completed(vacuum, stderr=recorded("journalctl-vacuum-size.stderr")),
    )
    playbook = playbook_with(
        images={"enabled": False},
        journal={"directory": str(tmp_path / "journal"), "max_size": "200M"},
    )

    plan, result = run(playbook, context(runner), mount=str(tmp_path))

    assert commands(plan) == [vacuum]
    assert result.status == "success"
    assert reclaimed(result) == {"journal": 40 * 1024**2}
    assert len(result.details["targets"]["journal"]["deleted"]) == 3


def test_the_journal_is_skipped_cleanly_without_journalctl(tmp_path: Path) -> None:
    (tmp_path / "journal").mkdir()
    runner = Replay().answer(missing(["journalctl", "--version"]))
    playbook = playbook_with(images={"enabled": False}, journal={"directory": str(tmp_path)})

    plan, result = run(playbook, context(runner), mount=str(tmp_path))

    assert result.status == "success" and result.impacts == ()
    assert result.details["skipped"]["journal"] == "journalctl is not installed"
    assert "skip journal: journalctl is not installed" in [a.description for a in plan.actions]
    assert commands(plan) == []


def test_the_journal_is_skipped_cleanly_without_a_journal_directory(tmp_path: Path) -> None:
    runner = Replay()
    absent = tmp_path / "no-journal"
    playbook = playbook_with(images={"enabled": False}, journal={"directory": str(absent)})

    _, result = run(playbook, context(runner), mount=str(tmp_path))

    assert result.status == "success"
    assert result.details["skipped"]["journal"] == f"no journal directory ({absent})"
    assert runner.calls == []


# --- images -----------------------------------------------------------------------------


def test_docker_prunes_images_and_build_cache_and_reports_their_totals(tmp_path: Path) -> None:
    runner = Replay().answer(
        completed(["docker", "image", "prune", "-f"], recorded("docker-image-prune.stdout")),
        completed(["docker", "builder", "prune", "-f"], recorded("docker-builder-prune.stdout")),
    )
    playbook = playbook_with(images={"engine": "docker"}, journal={"enabled": False})

    plan, result = run(playbook, context(runner), mount=str(tmp_path))

    assert commands(plan) == [
        ("docker", "image", "prune", "-f"),
        ("docker", "builder", "prune", "-f"),
    ]
    assert reclaimed(result) == {"images": 23_500_000 + 156_300_000}


def test_auto_uses_docker_when_podman_is_not_installed(tmp_path: Path) -> None:
    runner = Replay().answer(
        missing(["podman", "--version"]),
        completed(["docker", "--version"], recorded("docker-version.stdout")),
        completed(["docker", "image", "prune", "-f"], recorded("docker-image-prune.stdout")),
    )
    playbook = playbook_with(images={"build_cache": False}, journal={"enabled": False})

    _, result = run(playbook, context(runner), mount=str(tmp_path))

    assert runner.calls[-1] == ("docker", "image", "prune", "-f")
    assert reclaimed(result) == {"images": 23_500_000}


def test_no_container_engine_is_a_clean_skip(tmp_path: Path) -> None:
    runner = Replay().answer(missing(["podman", "--version"]), missing(["docker", "--version"]))
    playbook = playbook_with(journal={"enabled": False})

    _, result = run(playbook, context(runner), mount=str(tmp_path))

    assert result.status == "success" and result.impacts == ()
    assert result.details["skipped"]["images"] == "neither podman nor docker is installed"


def test_podman_prune_reclaims_the_sizes_of_the_images_it_removed(tmp_path: Path) -> None:
    listing = completed(PODMAN_LIST, recorded("podman-images-dangling.json"))
    runner = Replay().answer(
        listing,
        completed(["podman", "image", "prune", "-f"], recorded("podman-image-prune.stdout")),
    )
    playbook = playbook_with(images={"engine": "podman"}, journal={"enabled": False})

    plan, result = run(playbook, context(runner), mount=str(tmp_path))

    assert plan.actions[0].description == "prune podman dangling images (1 now, 1.9 MiB)"
    assert reclaimed(result) == {"images": 1987655}
    assert result.details["targets"]["images"]["removed"] == [json.loads(listing.stdout)[0]["Id"]]


def test_output_that_cannot_be_parsed_is_a_failure_naming_the_command(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    old = write(root / "old.log", 10, 30)
    runner = Replay().answer(
        completed(["docker", "image", "prune", "-f"], "something else entirely\n"),
    )
    playbook = playbook_with(
        images={"engine": "docker", "build_cache": False},
        journal={"enabled": False},
        paths=[{"root": str(root)}],
    )

    _, result = run(playbook, context(runner), mount=str(tmp_path))

    assert result.status == "failure"
    assert "could not parse the output of `docker image prune -f`" in result.summary
    assert not old.exists(), "the other targets still run"
    assert reclaimed(result) == {str(root): 10}


def test_a_failing_command_fails_its_target_with_the_reason(tmp_path: Path) -> None:
    stderr = (
        "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
        "Is the docker daemon running?\n"
    )
    runner = Replay().answer(completed(["docker", "image", "prune", "-f"], "", stderr, 1))
    playbook = playbook_with(
        images={"engine": "docker", "build_cache": False}, journal={"enabled": False}
    )

    _, result = run(playbook, context(runner), mount=str(tmp_path))

    assert result.status == "failure"
    assert "docker image prune -f exited 1: Cannot connect to the Docker daemon" in result.summary


# --- btrfs snapshots --------------------------------------------------------------------


def test_btrfs_deletes_the_oldest_snapshots_beyond_the_retention(tmp_path: Path) -> None:
    snapshots = tmp_path / ".snapshots"
    for day in range(14, 19):
        (snapshots / f"home.2025-12-{day}").mkdir(parents=True)
    listing = ("btrfs", "subvolume", "list", "-s", "-o", str(snapshots))
    deletes = [
        ("btrfs", "subvolume", "delete", str(snapshots / f"home.2025-12-{day}")) for day in (14, 15)
    ]
    template = recorded("btrfs-subvolume-delete.stdout")
    runner = Replay().answer(
        completed(listing, recorded("btrfs-subvolume-list.stdout")),
        *(completed(argv, template.format(path=argv[-1])) for argv in deletes),
    )
    playbook = playbook_with(**QUIET, btrfs={"snapshots_dir": str(snapshots), "retention": 3})

    plan, result = run(playbook, context(runner), mount=str(tmp_path))

    assert commands(plan) == deletes
    assert runner.calls == [listing, *deletes]
    assert result.status == "success"
    assert result.details["targets"]["btrfs"]["kept"] == 3


def test_btrfs_not_installed_is_a_failure_naming_the_package(tmp_path: Path) -> None:
    listing = ("btrfs", "subvolume", "list", "-s", "-o", str(tmp_path))
    runner = Replay().answer(missing(listing))
    playbook = playbook_with(**QUIET, btrfs={"snapshots_dir": str(tmp_path)})

    _, result = run(playbook, context(runner), mount=str(tmp_path))

    assert result.status == "failure"
    assert "apt-get install btrfs-progs" in result.summary


# --- verify -----------------------------------------------------------------------------


def test_verify_fails_while_usage_stays_above_the_threshold(tmp_path: Path) -> None:
    playbook = playbook_with(**QUIET, threshold_percent=0.001)

    _, result = run(playbook, context(), mount=str(tmp_path))

    assert result.status == "failure"
    assert "not below the 0.001% threshold" in result.summary
    assert result.details["before"]["total_bytes"] > 0


def test_verify_passes_below_the_threshold(tmp_path: Path) -> None:
    playbook = playbook_with(**QUIET, threshold_percent=100)

    _, result = run(playbook, context(), mount=str(tmp_path))

    assert result.status == "success"
    assert result.details["threshold_percent"] == 100


# --- the command line -------------------------------------------------------------------


def test_the_dry_run_prints_every_file_and_deletes_nothing(
    tmp_path: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "logs"
    old = write(root / "old.log", 2048, 0)
    thirty_days_ago = time.time() - 30 * DAY  # the CLI reads the system clock
    os.utime(old, (thirty_days_ago, thirty_days_ago))
    config = tmp_path / "remediate.yml"
    config.write_text(
        f"state: {{directory: {tmp_path / 'state'}}}\n"
        "playbooks:\n  settings:\n    disk-cleanup:\n"
        "      images: {enabled: false}\n      journal: {enabled: false}\n"
        f"      paths: [{{root: {root}, min_age_days: 0}}]\n"
    )

    argv = ["-c", str(config), "run", "disk-cleanup", "-p", f"mount={tmp_path}", "--dry-run"]

    code = main([*argv, "--format", "json"])

    shown = json.loads(capsys.readouterr().out)
    assert code == 0
    assert shown["target"] == str(tmp_path)
    assert {"description": f"delete {old} (2.0 KiB, 30.0 days old)", "argv": None} in (
        shown["plan"]
    )
    assert main(argv) == 0
    assert "nothing was executed" in capsys.readouterr().out
    assert old.exists()


def test_playbooks_lists_disk_cleanup_with_its_risk_and_parameter(
    tmp_path: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["playbooks", "--format", "json"])

    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert code == 0
    assert rows["disk-cleanup"]["risk"] == "low"
    assert rows["disk-cleanup"]["parameters"]["mount"]["default"] == "/"


def test_unused_images_are_pruned_only_when_asked_and_never_those_in_use(tmp_path: Path) -> None:
    listing = json.loads(recorded("podman-images-dangling.json"))
    in_use = {**listing[0], "Id": "f" * 64, "Size": 5000, "Containers": 1, "Dangling": False}
    everything = completed(("podman", "images", "--format", "json"), json.dumps([*listing, in_use]))
    runner = Replay().answer(
        everything,
        completed(
            ["podman", "image", "prune", "--all", "-f"], recorded("podman-image-prune.stdout")
        ),
    )
    playbook = playbook_with(
        images={"engine": "podman", "unused": True}, journal={"enabled": False}
    )

    plan, result = run(playbook, context(runner), mount=str(tmp_path))

    assert commands(plan) == [("podman", "image", "prune", "--all", "-f")]
    assert plan.actions[0].description == "prune podman unused images (1 now, 1.9 MiB)"
    assert reclaimed(result) == {"images": 1987655}


def test_a_deadline_that_passed_stops_the_deletions_and_reports_a_timeout(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    old = write(root / "old.log", 10, 30)
    playbook = playbook_with(**QUIET, paths=[{"root": str(root)}])
    ctx = context()
    params = playbook.parse_parameters({"mount": str(tmp_path)})
    plan = playbook.plan(ctx, params)
    ctx.deadline = time.monotonic() - 1

    result = playbook.execute(ctx, plan, params)

    assert result.status == "timeout"
    assert old.exists()
    assert "timeout passed while deleting" in result.stderr
