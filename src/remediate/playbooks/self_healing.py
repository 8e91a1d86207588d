"""self-healing-restart: find out why a service is down, restart it with backoff, verify it.

    remediate run self-healing-restart -p service=web --dry-run

Diagnosis reads only (inspect, the engine's event log, the health check) and
names one root cause, in this order:

    oom_killed            the engine says so (OOMKilled, systemd Result=oom-kill, an `oom`
                          event, State.Error) or, because podman under a cgroup v1/v2 hybrid
                          never sets OOMKilled: exit code 137 (SIGKILL) under a memory limit
                          with no `kill` by the engine since the last start
    dependency_down       a service named in `depends_on` is not running (or not healthy)
    crash_loop            it died `crash_loop_restarts` times within the window
    health_check_failing  it runs, but the declared (or the engine's) health check fails
    exit_code             it exited with a non-zero code
    stopped               it exited cleanly (code 0) or was never started
    healthy               nothing is wrong: the result is `skipped` and nothing restarts

A dependency that is down and declared is restarted first (with the same backoff
and verification): restarting the service alone would only fail again. A
dependency that is not declared cannot be restarted safely: it is reported and
the run fails without touching the service.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from remediate.config.models import Model, Service
from remediate.playbooks.base import Action, Context, Impact, Plan, Result, Risk
from remediate.playbooks.service_restart import (
    ServicePlaybook,
    describe_check,
    wait_until_healthy,
)
from remediate.system.health import check_health
from remediate.system.services import (
    ServiceError,
    ServiceEvent,
    ServiceManager,
    ServiceState,
    manager_for,
    object_name,
)

__all__ = ["Diagnosis", "SelfHealingRestart", "SelfHealingSettings", "oom_evidence"]

SIGKILL_EXIT = 137  # 128 + signal 9


class SelfHealingSettings(Model):
    crash_loop_restarts: int = Field(3, ge=1)
    crash_loop_window_minutes: float = Field(10, gt=0)
    verify_timeout_seconds: float = Field(30, gt=0)
    # A restarted service must keep running this long to count as back.
    settle_seconds: float = Field(2, ge=0)
    backoff_seconds: tuple[float, ...] = Field((0, 2, 5), min_length=1)
    stop_timeout_seconds: float = Field(10, ge=0)
    poll_interval_seconds: float = Field(0.5, gt=0)
    timeout_seconds: float = Field(300, gt=0)


@dataclass(frozen=True)
class Diagnosis:
    root_cause: str
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)
    dependencies_down: tuple[str, ...] = ()
    undeclared_dependencies: tuple[str, ...] = ()
    exists: bool = True


def oom_evidence(state: ServiceState, events: list[ServiceEvent]) -> str | None:
    """Why we believe the kernel's OOM killer ended the service, or None."""
    if state.running:
        return None
    if state.oom_killed:
        return "systemd reports Result=oom-kill" if state.error else "the engine reports OOMKilled"
    if "oom" in state.error.lower() or "out of memory" in state.error.lower():
        return f"the engine's error: {state.error}"
    since_start = [e for e in events if state.started_at is None or e.time >= state.started_at]
    if any(event.action == "oom" for event in since_start):
        return "the engine logged an oom event"
    if (
        state.exit_code == SIGKILL_EXIT
        and state.memory_limit
        and not any(event.action in ("kill", "stop") for event in since_start)
    ):
        return (
            f"exit code {SIGKILL_EXIT} (SIGKILL) under a memory limit of {state.memory_limit} "
            "bytes, and the engine logged no kill or stop since it started"
        )
    return None


class SelfHealingRestart(ServicePlaybook[SelfHealingSettings]):
    """Diagnose a down or unhealthy service, restart it (dependencies first), verify it."""

    name: ClassVar[str] = "self-healing-restart"
    description: ClassVar[str] = (
        "Diagnose why a service is down (OOM kill, exit code, failing health check, crash "
        "loop, dependency down), restart it with backoff, verify it is healthy, record the "
        "root cause"
    )
    risk: ClassVar[Risk] = "low"

    settings_model = SelfHealingSettings

    # --- diagnosis ----------------------------------------------------------------------

    def diagnose(self, ctx: Context, service: Service) -> Diagnosis:
        manager = manager_for(service, ctx.run)
        name = object_name(service)
        state = manager.inspect(name)
        if not state.exists:
            return Diagnosis(
                "missing",
                f"{service.manager} has no {name}: drift-reconciliation can create it",
                exists=False,
            )
        window = self.config.crash_loop_window_minutes * 60
        events = manager.events(name, ctx.clock.now() - window)
        deaths = sum(1 for event in events if event.action == "died")
        if manager.kind == "systemd":
            deaths = max(deaths, state.restart_count)
        evidence: dict[str, Any] = {
            "status": state.status,
            "exit_code": state.exit_code,
            "oom_killed_flag": state.oom_killed,
            "memory_limit": state.memory_limit,
            "deaths_in_window": deaths,
            "engine_health": state.health,
        }
        down, undeclared = self._dependencies(ctx, service)
        oom = oom_evidence(state, events)
        if oom is not None:
            return Diagnosis("oom_killed", oom, evidence, down, undeclared)
        crash_loop = deaths >= self.config.crash_loop_restarts
        if state.running:
            health = None
            if service.health_check is not None:
                health = check_health(service.health_check, ctx.run)
                evidence["health_check"] = health.detail
            failing = state.health == "unhealthy" or (health is not None and not health.healthy)
            if failing and (down or undeclared):
                return Diagnosis(
                    "dependency_down",
                    _dependency_detail(down, undeclared),
                    evidence,
                    down,
                    undeclared,
                )
            if crash_loop:
                return Diagnosis("crash_loop", _loop_detail(deaths, window), evidence)
            if failing:
                detail = health.detail if health else "the engine's health check reports unhealthy"
                return Diagnosis("health_check_failing", detail, evidence)
            return Diagnosis(
                "healthy", f"{name} is running" + (f"; {health.detail}" if health else ""), evidence
            )
        if down or undeclared:
            return Diagnosis(
                "dependency_down", _dependency_detail(down, undeclared), evidence, down, undeclared
            )
        if crash_loop:
            return Diagnosis("crash_loop", _loop_detail(deaths, window), evidence)
        if state.exit_code:
            return Diagnosis("exit_code", f"{name} exited with code {state.exit_code}", evidence)
        return Diagnosis("stopped", f"{name} is {state.status} (exit code 0)", evidence)

    def _dependencies(
        self, ctx: Context, service: Service
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        down: list[str] = []
        undeclared: list[str] = []
        for dependency_name in service.depends_on:
            dependency = self.settings.service(dependency_name)
            if dependency is None:
                undeclared.append(dependency_name)
                continue
            state = manager_for(dependency, ctx.run).inspect(object_name(dependency))
            healthy = state.exists and state.running and state.health != "unhealthy"
            if healthy and dependency.health_check is not None:
                healthy = check_health(dependency.health_check, ctx.run).healthy
            if not healthy:
                down.append(dependency_name)
        return tuple(down), tuple(undeclared)

    # --- plan, execute ------------------------------------------------------------------

    def plan(self, ctx: Context, params: BaseModel) -> Plan:
        service = self.service(params)
        diagnosis = self.diagnose(ctx, service)
        actions = [Action(f"diagnosis: {diagnosis.root_cause}: {diagnosis.detail}")]
        backoff = ", ".join(f"{delay:g}s" for delay in self.config.backoff_seconds)
        if diagnosis.root_cause == "healthy":
            actions.append(Action(f"nothing to do: {service.name} is healthy"))
        elif not diagnosis.exists:
            actions.append(Action(f"cannot restart: {diagnosis.detail}"))
        elif diagnosis.undeclared_dependencies:
            actions.append(
                Action(
                    "cannot restart: dependencies not declared as services: "
                    + ", ".join(diagnosis.undeclared_dependencies)
                )
            )
        else:
            for dependency_name in diagnosis.dependencies_down:
                dependency = self.settings.service(dependency_name)
                assert dependency is not None
                actions.extend(self._restart_actions(ctx, dependency, backoff, "dependency "))
            actions.extend(self._restart_actions(ctx, service, backoff, ""))
        return Plan(
            tuple(actions),
            summary=f"{service.name}: {diagnosis.root_cause}",
            data={"diagnosis": diagnosis},
        )

    def _restart_actions(
        self, ctx: Context, service: Service, backoff: str, role: str
    ) -> list[Action]:
        manager = manager_for(service, ctx.run)
        return [
            Action(
                f"restart {role}{service.name} (tries after {backoff})",
                argv=manager.restart_argv(object_name(service), self.config.stop_timeout_seconds),
            ),
            Action(
                f"verify {service.name} is healthy within "
                f"{self.config.verify_timeout_seconds:g}s ({describe_check(service)})"
            ),
        ]

    def execute(self, ctx: Context, plan: Plan, params: BaseModel) -> Result:
        service = self.service(params)
        diagnosis: Diagnosis = plan.data["diagnosis"]
        cause = diagnosis.root_cause
        details: dict[str, Any] = {"diagnosis": diagnosis.detail, "evidence": diagnosis.evidence}
        impacts: list[Impact] = []
        if cause == "oom_killed":
            impacts.append(Impact("oom_detected", 1, service.name))
        if cause == "healthy":
            return Result("skipped", diagnosis.detail, root_cause=cause, details=details)
        if not diagnosis.exists or diagnosis.undeclared_dependencies:
            return Result(
                "failure",
                plan.actions[-1].description,
                root_cause=cause,
                impacts=tuple(impacts),
                details=details,
            )
        done: list[str] = []
        for dependency_name in diagnosis.dependencies_down:
            dependency = self.settings.service(dependency_name)
            assert dependency is not None
            ok, detail = self._restart_with_backoff(ctx, dependency, impacts, done)
            if not ok:
                return Result(
                    "failure",
                    f"{service.name}: {cause}; dependency {dependency_name} did not recover: "
                    f"{detail}",
                    tuple(done),
                    tuple(impacts),
                    root_cause=cause,
                    details=details,
                )
        ok, detail = self._restart_with_backoff(ctx, service, impacts, done)
        tries = sum(
            1 for i in impacts if i.kind == "service_restarted" and i.subject == service.name
        )
        details["restarts"] = tries
        summary = (
            f"{service.name}: {cause} ({diagnosis.detail}); restarted {tries} time(s): {detail}"
        )
        return Result(
            "success" if ok else "failure",
            summary,
            tuple(done),
            tuple(impacts),
            root_cause=cause,
            details=details,
        )

    def _restart_with_backoff(
        self, ctx: Context, service: Service, impacts: list[Impact], done: list[str]
    ) -> tuple[bool, str]:
        """Restart, then verify; on failure wait the next backoff delay and try again."""
        manager: ServiceManager = manager_for(service, ctx.run)
        name = object_name(service)
        detail = "not tried"
        sleep: Callable[[float], None] = self.sleep
        for delay in self.config.backoff_seconds:
            if delay > 0:
                sleep(min(delay, max(ctx.remaining(), 0)))
            before = manager.inspect(name)
            argv = manager.restart_argv(name, self.config.stop_timeout_seconds)
            done.append(Action(f"restart {service.name}", argv=argv).render())
            try:
                manager.restart(name, self.config.stop_timeout_seconds)
            except ServiceError as error:
                detail = error.message
                continue
            impacts.append(Impact("service_restarted", 1, service.name))
            verification = wait_until_healthy(
                ctx,
                manager,
                service,
                timeout=self.config.verify_timeout_seconds,
                poll_interval=self.config.poll_interval_seconds,
                sleep=sleep,
                previous_start=before.started_at,
                settle=self.config.settle_seconds,
            )
            detail = verification.detail
            if verification.healthy:
                return True, detail
        return False, detail


def _dependency_detail(down: tuple[str, ...], undeclared: tuple[str, ...]) -> str:
    parts = []
    if down:
        parts.append("down: " + ", ".join(down))
    if undeclared:
        parts.append("not declared: " + ", ".join(undeclared))
    return "dependencies " + "; ".join(parts)


def _loop_detail(deaths: int, window: float) -> str:
    return f"died {deaths} times within {window / 60:g} minutes"
