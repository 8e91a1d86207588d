"""drift-reconciliation: compare a declared service with what runs; reconcile by recreating it.

    remediate run drift-reconciliation -p service=web --dry-run

Compared, when the declaration names them: image, each declared env variable
and label (extra ones the image adds are not drift), ports, memory limit,
command. A container is reconciled by a graceful `stop`, `rm -f` and a `run -d`
built from the declaration alone; a systemd unit (a quadlet too) by restarting it, which only
helps once its unit file matches: what still differs afterwards is reported.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from remediate.config.models import Model, Service
from remediate.errors import ConfigError
from remediate.playbooks.base import Action, Context, Impact, Plan, Result, Risk, excerpt
from remediate.playbooks.service_restart import ServicePlaybook, wait_until_healthy
from remediate.system.services import (
    COMMAND_TIMEOUT_SECONDS,
    ServiceManager,
    ServiceState,
    manager_for,
    normalize_port,
    object_name,
)

__all__ = ["Difference", "DriftReconciliation", "DriftSettings", "differences"]


class DriftSettings(Model):
    stop_timeout_seconds: float = Field(10, ge=0)
    verify_timeout_seconds: float = Field(30, gt=0)
    # A recreated service must keep running this long to count as back.
    settle_seconds: float = Field(2, ge=0)
    poll_interval_seconds: float = Field(0.5, gt=0)
    timeout_seconds: float = Field(300, gt=0)


@dataclass(frozen=True)
class Difference:
    field: str
    declared: Any
    running: Any

    def describe(self) -> str:
        return f"{self.field}: declared {self.declared!r}, running {self.running!r}"


def _image(reference: str) -> str:
    """ "bb" and "bb:latest" are the same image; a digest pins one exactly."""
    last = reference.rsplit("/", 1)[-1]
    return reference if ":" in last or "@" in reference else reference + ":latest"


def _same_image(declared: str, running: str) -> bool:
    declared, running = _image(declared), _image(running)
    # podman qualifies short names it resolved locally: "bb:latest" runs as "localhost/bb:latest".
    return declared == running or running.endswith("/" + declared)


def differences(service: Service, state: ServiceState, *, systemd: bool) -> list[Difference]:
    """Every way the running service differs from its declaration."""
    if not state.exists:
        return [Difference("exists", True, False)]
    found: list[Difference] = []
    if not systemd and service.image and not _same_image(service.image, state.image or ""):
        found.append(Difference("image", service.image, state.image))
    for key, value in sorted(service.env.items()):
        if state.env.get(key) != value:
            found.append(Difference(f"env.{key}", value, state.env.get(key)))
    if not systemd:
        for key, value in sorted(service.labels.items()):
            if state.labels.get(key) != value:
                found.append(Difference(f"labels.{key}", value, state.labels.get(key)))
        if service.ports:
            declared = sorted(normalize_port(port) for port in service.ports)
            if declared != sorted(state.ports):
                found.append(Difference("ports", declared, list(state.ports)))
        if service.command is not None and tuple(service.command) != state.command:
            found.append(Difference("command", list(service.command), list(state.command or ())))
    if service.memory_limit is not None and service.memory_limit != state.memory_limit:
        found.append(Difference("memory_limit", service.memory_limit, state.memory_limit))
    return found


class DriftReconciliation(ServicePlaybook[DriftSettings]):
    """Report how a service drifted from its declaration and recreate (or restart) it."""

    name: ClassVar[str] = "drift-reconciliation"
    description: ClassVar[str] = (
        "Compare a declared service (image, env, labels, ports, memory limit, command) with "
        "what runs; recreate the container from its declaration, or restart the systemd unit"
    )
    risk: ClassVar[Risk] = "medium"

    settings_model = DriftSettings

    def _reconcile_actions(
        self, manager: ServiceManager, service: Service, state: ServiceState
    ) -> list[Action]:
        name = object_name(service)
        if manager.kind == "systemd":
            return [
                Action(
                    f"restart unit {name}",
                    argv=manager.restart_argv(name, self.config.stop_timeout_seconds),
                )
            ]
        try:
            create = manager.create_argv(service)
        except ValueError as error:
            raise ConfigError(str(error), field=f"services.{service.name}") from None
        actions = []
        if state.running:  # stop gracefully first: `rm -f` alone would not wait for it
            stop = manager.stop_argv(name, self.config.stop_timeout_seconds)
            actions.append(Action(f"stop container {name}", argv=stop))
        if state.exists:
            actions.append(Action(f"remove container {name}", argv=manager.remove_argv(name)))
        actions.append(Action(f"create {name} from its declaration", argv=create))
        return actions

    def plan(self, ctx: Context, params: BaseModel) -> Plan:
        service = self.service(params)
        manager = manager_for(service, ctx.run)
        state = manager.inspect(object_name(service))
        found = differences(service, state, systemd=manager.kind == "systemd")
        if not found:
            return Plan(
                (Action(f"no drift: {service.name} matches its declaration"),),
                summary=f"{service.name}: no drift",
                data={"differences": []},
            )
        actions = [Action(f"drift {difference.describe()}") for difference in found]
        actions.extend(self._reconcile_actions(manager, service, state))
        return Plan(
            tuple(actions),
            summary=f"{service.name}: {len(found)} difference(s)",
            data={"differences": found},
        )

    def execute(self, ctx: Context, plan: Plan, params: BaseModel) -> Result:
        service = self.service(params)
        found: list[Difference] = list(plan.data["differences"])
        details: dict[str, Any] = {"differences": [d.describe() for d in found]}
        if not found:
            return Result("skipped", plan.summary, details=details)
        manager = manager_for(service, ctx.run)
        name = object_name(service)
        done: list[str] = []
        for action in plan.actions:
            if action.argv is None:
                continue
            done.append(action.render())
            # The plan holds the exact argv shown by --dry-run: run those, not a rebuild.
            completed = ctx.run(
                action.argv, timeout=COMMAND_TIMEOUT_SECONDS + self.config.stop_timeout_seconds
            )
            if not completed.ok:
                reason = (completed.stderr or completed.stdout).strip()
                return Result(
                    "failure",
                    f"{shlex.join(action.argv[:2])} exited {completed.returncode}: "
                    f"{reason[-300:] or 'no output'}",
                    tuple(done),
                    stderr=excerpt(completed.stderr),
                    details=details,
                )
        impacts = (Impact("service_restarted", 1, service.name),)
        verification = wait_until_healthy(
            ctx,
            manager,
            service,
            timeout=self.config.verify_timeout_seconds,
            poll_interval=self.config.poll_interval_seconds,
            sleep=self.sleep,
            settle=self.config.settle_seconds,
        )
        state = verification.state or manager.inspect(name)
        remaining = differences(service, state, systemd=manager.kind == "systemd")
        details["remaining"] = [d.describe() for d in remaining]
        if remaining:
            return Result(
                "failure",
                f"{service.name} still differs after reconciling: "
                + "; ".join(d.describe() for d in remaining),
                tuple(done),
                impacts,
                details=details,
            )
        if not verification.healthy:
            return Result(
                "failure",
                f"{service.name} matches its declaration but {verification.detail}",
                tuple(done),
                impacts,
                details=details,
            )
        return Result(
            "success",
            f"{service.name} reconciled ({len(found)} difference(s)): {verification.detail}",
            tuple(done),
            impacts,
            details=details,
        )
