"""Running a schedule: `fire` (what a systemd timer's service calls) and the embedded runner
that `remediate serve` uses where there is no systemd (`schedules.runner: embedded`).

    scheduler = EmbeddedScheduler(settings, fire=lambda s: fire(runtime, s), clock=clock)
    scheduler.start() ... scheduler.stop()

The embedded runner computes each schedule's next elapse with the OnCalendar parser
in calendar.py and, unlike the timers' `Persistent=true`, does not replay runs missed
while it was down: it only looks forward from when it started.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from remediate.autonomous.calendar import Calendar
from remediate.clock import Clock
from remediate.config.models import Schedule, Settings
from remediate.errors import RemediateError, UsageError, close_matches

if TYPE_CHECKING:
    from remediate.runtime import Runtime

log = logging.getLogger("remediate.schedules")


def find(settings: Settings, name: str) -> Schedule:
    for schedule in settings.schedules.items:
        if schedule.name == name:
            return schedule
    known = [schedule.name for schedule in settings.schedules.items]
    raise UsageError(f"no schedule {name!r}{close_matches(name, known)}")


def fire(runtime: Runtime, schedule: Schedule) -> dict[str, Any]:
    """Run one schedule now through the pipeline, with source `schedule`."""
    settings = runtime.settings
    if schedule.playbook is not None:
        from remediate.pipeline.request import Request

        decision, report = runtime.pipeline.run(
            Request(
                schedule.playbook,
                parameters={key: str(value) for key, value in schedule.parameters.items()},
                source="schedule",
                confirmed=schedule.confirmed,
            )
        )
        data: dict[str, Any] = {
            "schedule": schedule.name,
            "playbook": schedule.playbook,
            "action": decision.action,
            "reason": decision.reason,
            "decision_id": decision.id,
        }
        if report is not None:
            data.update(status=report.status, summary=report.summary)
        return data
    if schedule.chain is not None:
        from remediate.chains.executor import ChainRunner

        runner = ChainRunner(
            settings, runtime.store, runtime.registry, runtime.pipeline, clock=runtime.clock
        )
        chain_report = runner.run(schedule.chain, confirmed=schedule.confirmed, source="schedule")
        return {"schedule": schedule.name, "chain": schedule.chain, "status": chain_report.status}
    if schedule.task == "observe":
        from remediate.autonomous.observe import Loop

        cycle = Loop(settings, runtime.store, clock=runtime.clock, pipeline=runtime.pipeline).run(
            act=True
        )
        acted = [item.as_dict() for item in cycle.decisions if item.decision == "act"]
        return {"schedule": schedule.name, "task": "observe", "cycle": cycle.id, "acted": acted}
    from remediate.analytics.monthly import monthly, write
    from remediate.analytics.window import Window

    report_window = Window.previous_month(now=runtime.clock.now())
    directory = settings.state.resolved_directory() / "reports"
    written = write(monthly(runtime.store, settings, report_window), directory)
    return {
        "schedule": schedule.name,
        "task": "monthly-report",
        "written": [str(p) for p in written],
    }


class EmbeddedScheduler:
    """Fires each enabled schedule at its next elapse, in a background thread."""

    def __init__(
        self,
        settings: Settings,
        *,
        fire: Callable[[Schedule], object],
        clock: Clock,
        wait: Callable[[threading.Event, float], bool] | None = None,
    ) -> None:
        self.schedules = [item for item in settings.schedules.items if item.enabled]
        self.calendars = {item.name: Calendar.parse(item.calendar) for item in self.schedules}
        self.fire = fire
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wait = wait or (lambda event, seconds: event.wait(seconds))
        self.next: dict[str, float] = {}

    def plan(self, now: float) -> None:
        """Compute every schedule's next elapse after `now`."""
        self.next = {name: cal.next_after(now) for name, cal in self.calendars.items()}

    def due(self, now: float) -> list[Schedule]:
        """Fire what is due at `now` (each once) and move it to its next elapse."""
        fired: list[Schedule] = []
        for schedule in self.schedules:
            if self.next.get(schedule.name, float("inf")) <= now:
                try:
                    self.fire(schedule)
                except RemediateError as error:
                    log.warning("schedule %s: %s", schedule.name, error.message)
                except Exception:  # one schedule's bug must not stop the others
                    log.exception("schedule %s failed", schedule.name)
                self.next[schedule.name] = self.calendars[schedule.name].next_after(now)
                fired.append(schedule)
        return fired

    def start(self) -> None:
        if self._thread is not None:
            return
        self.plan(self.clock.now())
        self._thread = threading.Thread(target=self._loop, name="remediate-schedules", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = self.clock.now()
            self.due(now)
            upcoming = min(self.next.values(), default=now + 3600)
            # Sleep until the next elapse, but wake at least once a minute: the wall clock
            # may jump (suspend, NTP) and the clock is read again on every wake.
            if self._wait(self._stop, max(0.05, min(60.0, upcoming - self.clock.now()))):
                return

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
