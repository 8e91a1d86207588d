"""Generated systemd units pass `systemd-analyze verify`; every calendar passes
`systemd-analyze calendar`, and the embedded runner's next elapses agree with systemd's.

systemd is not PID 1 here, so `systemctl --user` cannot reach a user manager: install
then prints the commands (the real behaviour, tested with the real systemctl). The
success path replays systemctl's recorded output.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from remediate.autonomous.calendar import Calendar
from remediate.autonomous.schedules import generated, install, remove, render_all
from remediate.config.models import Settings
from remediate.system.process import Completed, run_process
from tests.helpers import require_binary

pytestmark = pytest.mark.integration

COMMAND = [sys.executable, "-m", "remediate", "--config", "/etc/remediate/remediate.yml"]
CALENDARS = [
    "Sun *-*-* 03:00:00",
    "*-*-* 06:00:00",
    "*-*-* 06:30:00",
    "*-*-01 07:00:00",
    "Mon..Fri *-*-* 9,17:30",
    "*:0/15",
    "weekly",
    "monthly",
]


def test_the_default_schedules_generate_units_that_systemd_verifies(tmp_path: Path) -> None:
    analyze = require_binary("systemd-analyze", "systemd")
    units = render_all(Settings(), COMMAND)
    assert sorted(units) == [
        "remediate-autonomous-operations.service",
        "remediate-autonomous-operations.timer",
        "remediate-database-maintenance.service",
        "remediate-database-maintenance.timer",
        "remediate-monthly-report.service",
        "remediate-monthly-report.timer",
        "remediate-predictive-maintenance-check.service",
        "remediate-predictive-maintenance-check.timer",
    ]
    for name, text in units.items():
        (tmp_path / name).write_text(text)
    done = subprocess.run(
        [analyze, "verify", *sorted(str(path) for path in tmp_path.iterdir())],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # Warnings about our own files would mean a key systemd does not understand.
    assert "remediate-" not in done.stderr, done.stderr
    timer = units["remediate-database-maintenance.timer"]
    assert "OnCalendar=Sun *-*-* 03:00:00\n" in timer and "Persistent=true\n" in timer
    service = units["remediate-database-maintenance.service"]
    assert service.count("ExecStart=") == 1
    assert "timers fire database-maintenance\n" in service


def test_an_argument_with_spaces_and_percent_signs_survives_systemd_parsing(
    tmp_path: Path,
) -> None:
    analyze = require_binary("systemd-analyze", "systemd")
    config = tmp_path / "my configs" / "100% remediate.yml"
    units = render_all(Settings(), [sys.executable, "-m", "remediate", "--config", str(config)])
    path = tmp_path / "remediate-monthly-report.service"
    path.write_text(units[path.name])
    done = subprocess.run(
        [analyze, "verify", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert '"' + str(config).replace("%", "%%") + '"' in units[path.name]


@pytest.mark.parametrize("expression", CALENDARS)
def test_every_calendar_passes_systemd_and_the_embedded_runner_agrees(expression: str) -> None:
    analyze = require_binary("systemd-analyze", "systemd")
    done = subprocess.run(
        [analyze, "calendar", "--iterations=3", expression],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # "    Next elapse: Sun 2026-11-29 03:00:00 UTC" then "       Iter. #2: ...", local time.
    systemd = [
        dt.datetime.strptime(match, "%Y-%m-%d %H:%M:%S")
        for match in re.findall(
            r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", done.stdout
        )
    ]
    assert len(systemd) == 3, done.stdout
    calendar = Calendar.parse(expression)
    # Start a minute before systemd's first elapse, so both look from the same moment.
    moment = systemd[0].timestamp() - 60
    ours = []
    for _ in range(3):
        moment = calendar.next_after(moment)
        ours.append(dt.datetime.fromtimestamp(moment))
    assert ours == systemd


def test_the_default_schedules_calendars_pass_systemd_analyze() -> None:
    analyze = require_binary("systemd-analyze", "systemd")
    for schedule in Settings().schedules.items:
        done = subprocess.run(
            [analyze, "calendar", schedule.calendar], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, (schedule.name, done.stderr)


def test_install_without_a_user_manager_writes_the_units_and_prints_the_commands(
    tmp_path: Path,
) -> None:
    require_binary("systemctl", "systemd")
    require_binary("systemd-analyze", "systemd")
    directory = tmp_path / "user"
    report = install(Settings(), directory, run_process, command=COMMAND)
    assert len(report.written) == 8
    assert {path.name for path in generated(directory)} == set(report.written)
    assert report.manual is True
    argvs = [command.argv for command in report.commands]
    assert argvs[0] == ("systemctl", "--user", "daemon-reload")
    assert argvs[1][:4] == ("systemctl", "--user", "enable", "--now")
    assert set(argvs[1][4:]) == {name for name in report.written if name.endswith(".timer")}
    assert report.commands[0].ok is False and report.commands[0].output  # the real refusal
    assert report.commands[1].ok is None  # printed, not run


class Recorded:
    """systemctl answering as it does with a user manager (output recorded from systemd 252
    on Debian 12: `enable --now` reports each symlink on stderr, daemon-reload says nothing)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str], *, timeout: float, **_: Any) -> Completed:
        argv = tuple(argv)
        self.calls.append(argv)
        if argv[:2] == ("systemd-analyze", "calendar"):
            return run_process(argv, timeout=timeout)
        stderr = ""
        if argv[2:4] == ("enable", "--now"):
            stderr = "".join(
                f"Created symlink {self.home}/timers.target.wants/{name} → {self.home}/{name}.\n"
                for name in argv[4:]
            )
        return Completed(argv, 0, "", stderr, 0.05)


def test_install_and_remove_with_a_user_manager_touch_only_remediate_units(
    tmp_path: Path,
) -> None:
    require_binary("systemd-analyze", "systemd")
    directory = tmp_path / "user"
    directory.mkdir()
    (directory / "remediate-mine.timer").write_text("[Timer]\nOnCalendar=daily\n")  # not ours
    runner = Recorded(directory)
    report = install(Settings(), directory, runner, command=COMMAND)
    assert report.manual is False and all(command.ok for command in report.commands)
    fewer = Settings.model_validate(
        {"schedules": {"items": [{"name": "nightly", "task": "observe", "calendar": "daily"}]}}
    )
    again = install(fewer, directory, runner, command=COMMAND, enable=False)
    assert sorted(again.removed) == sorted(report.written)
    assert [command.argv for command in again.commands] == [
        ("systemctl", "--user", "daemon-reload")
    ]
    gone = remove(directory, runner)
    assert sorted(gone.removed) == ["remediate-nightly.service", "remediate-nightly.timer"]
    assert gone.commands[0].argv == (
        "systemctl", "--user", "disable", "--now", "remediate-nightly.timer"
    )  # fmt: skip
    assert [path.name for path in directory.iterdir()] == ["remediate-mine.timer"]


def test_a_calendar_systemd_rejects_stops_install_before_anything_is_written(
    tmp_path: Path,
) -> None:
    from remediate.errors import UsageError

    require_binary("systemd-analyze", "systemd")
    bad = Settings.model_validate(
        {"schedules": {"items": [{"name": "x", "task": "observe", "calendar": "every tuesday"}]}}
    )
    with pytest.raises(UsageError) as raised:
        install(bad, tmp_path / "user", run_process, command=COMMAND)
    assert "schedule x" in raised.value.message
    assert not (tmp_path / "user").exists()
