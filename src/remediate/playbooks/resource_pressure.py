"""resource-pressure: read memory, CPU and IO pressure, rank the consumers, and restart
only allow-listed services that are over their declared memory budget.

Anything else is reported and escalated (the result is a failure with the
evidence, so the operator is notified and the breaker counts it): memory
pressure needs a root cause, not a cache flush. A full zram swap is normal and
is never "fixed".
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from remediate.config.models import Service, Settings
from remediate.playbooks.base import Action, Context, Impact, Plan, Playbook, Result, excerpt
from remediate.system import pressure
from remediate.system.services import ServiceError, manager_for, object_name


class ResourcePressureSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Services this playbook may restart (and only when over their memory_budget).
    allow_restart: tuple[str, ...] = ()
    # Pressure is present when any of these holds.
    memory_psi_some_avg60: float = Field(10.0, ge=0, le=100)
    memory_available_percent: float = Field(10.0, ge=0, le=100)
    disk_swap_used_percent: float = Field(80.0, ge=0, le=100)
    top_processes: int = Field(5, ge=1, le=50)
    stop_timeout_seconds: float = Field(10, gt=0)


class ResourcePressure(Playbook):
    name = "resource-pressure"
    description = "Read PSI, memory and swap; restart allow-listed services over their budget"
    risk = "medium"
    timeout = 180.0

    def __init__(self, settings: ResourcePressureSettings, services: tuple[Service, ...]) -> None:
        self.settings = settings
        self.services = services

    @classmethod
    def from_settings(cls, settings: Settings) -> ResourcePressure:
        return cls(cls.playbook_settings(settings, ResourcePressureSettings), settings.services)

    def _observe(self, ctx: Context) -> dict[str, Any]:
        snap = pressure.snapshot(top=self.settings.top_processes)
        findings = []
        memory_psi = snap.psi.get("memory")
        if memory_psi and memory_psi.some_avg60 >= self.settings.memory_psi_some_avg60:
            findings.append(f"memory PSI some avg60 {memory_psi.some_avg60:.1f}%")
        if snap.memory_available_percent <= self.settings.memory_available_percent:
            findings.append(f"memory available {snap.memory_available_percent:.1f}%")
        if snap.disk_swap_used_percent >= self.settings.disk_swap_used_percent:
            findings.append(f"disk swap used {snap.disk_swap_used_percent:.1f}%")
        zram_full = [s.device for s in snap.swaps if s.zram and s.used_bytes >= 0.9 * s.size_bytes]
        usage: dict[str, int] = {}
        over_budget: list[dict[str, Any]] = []
        for engine in ("podman", "docker"):
            declared = [s for s in self.services if s.manager == engine]
            if not declared:
                continue
            try:
                memory = manager_for(declared[0], ctx.run).container_memory()
            except ServiceError as error:
                findings.append(f"could not read {engine} memory: {error.reason}")
                continue
            for service in declared:
                used = memory.get(object_name(service))
                if used is None:
                    continue
                usage[service.name] = used
                if service.memory_budget is not None and used > service.memory_budget:
                    over_budget.append(
                        {
                            "service": service.name,
                            "used_bytes": used,
                            "budget_bytes": service.memory_budget,
                            "allowed": service.name in self.settings.allow_restart,
                        }
                    )
        return {
            "findings": findings,
            "psi": {name: asdict(value) for name, value in snap.psi.items()},
            "memory_available_percent": round(snap.memory_available_percent, 2),
            "swaps": [asdict(swap) | {"zram": swap.zram} for swap in snap.swaps],
            "zram_full_is_normal": zram_full,
            "container_memory": usage,
            "over_budget": over_budget,
            "top_processes": [asdict(process) for process in snap.top_processes],
        }

    def plan(self, ctx: Context, params: BaseModel) -> Plan:
        observed = self._observe(ctx)
        actions = []
        for entry in observed["over_budget"]:
            if not entry["allowed"]:
                continue
            service = next(s for s in self.services if s.name == entry["service"])
            manager = manager_for(service, ctx.run)
            argv = manager.restart_argv(object_name(service), self.settings.stop_timeout_seconds)
            actions.append(
                Action(
                    f"restart {service.name}: {entry['used_bytes']} bytes over its budget of "
                    f"{entry['budget_bytes']}",
                    argv=argv,
                )
            )
        summary = "; ".join(observed["findings"]) or "no pressure"
        return Plan(tuple(actions), summary=summary, data=observed)

    def execute(self, ctx: Context, plan: Plan, params: BaseModel) -> Result:
        observed = dict(plan.data)
        done: list[str] = []
        impacts: list[Impact] = []
        errors: list[str] = []
        for action in plan.actions:
            assert action.argv is not None
            completed = ctx.run(action.argv, timeout=self.settings.stop_timeout_seconds + 60)
            done.append(action.render())
            service = action.description.split(":")[0].removeprefix("restart ")
            if completed.ok:
                impacts.append(Impact("service_restarted", 1, service))
            else:
                errors.append(f"{service}: {excerpt(completed.stderr.strip(), 200)}")
        not_allowed = [e["service"] for e in observed["over_budget"] if not e["allowed"]]
        if errors:
            return Result(
                "failure",
                "restart failed: " + "; ".join(errors),
                tuple(done),
                tuple(impacts),
                root_cause="memory_pressure",
                details=observed,
            )
        if impacts:
            return Result(
                "success",
                f"restarted {len(impacts)} service(s) over budget",
                tuple(done),
                tuple(impacts),
                root_cause="memory_pressure",
                details=observed,
            )
        if observed["findings"]:
            consumers = ", ".join(
                f"{p['name']}({p['rss_bytes'] // (1024 * 1024)} MiB)"
                for p in observed["top_processes"][:3]
            )
            extra = (
                f"; over budget but not allow-listed: {', '.join(not_allowed)}"
                if (not_allowed)
                else ""
            )
            return Result(
                "failure",
                f"pressure ({plan.summary}) with no allow-listed service over budget: "
                f"escalating; top consumers {consumers}{extra}",
                root_cause="memory_pressure",
                details=observed,
            )
        return Result("skipped", "no pressure: nothing to do", details=observed)
