"""service-restart: restart a declared service gracefully and verify it comes back healthy.

    remediate run service-restart -p service=web --dry-run

No diagnosis (that is self-healing-restart's job). Also home of what the three
service playbooks share: the `service` parameter, checked against the declared
services before anything runs, and the wait for a service to become healthy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from remediate.config.models import Model, Name, Service, Settings
from remediate.errors import ParameterError, close_matches
from remediate.playbooks.base import Action, Context, Impact, Plan, Playbook, Result, Risk
from remediate.system.health import check_health
from remediate.system.services import (
    ServiceError,
    ServiceManager,
    ServiceState,
    manager_for,
    object_name,
)

__all__ = [
    "ServiceParameters",
    "ServicePlaybook",
    "ServiceRestart",
    "ServiceRestartSettings",
    "Verification",
    "wait_until_healthy",
]


class ServiceParameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    service: Name = Field(description="a service declared under `services` in the config")


class ServiceRestartSettings(Model):
    stop_timeout_seconds: float = Field(10, ge=0)
    verify_timeout_seconds: float = Field(30, gt=0)
    # A restarted service must keep running this long to count as back.
    settle_seconds: float = Field(2, ge=0)
    poll_interval_seconds: float = Field(0.5, gt=0)
    timeout_seconds: float = Field(120, gt=0)


@dataclass(frozen=True)
class Verification:
    healthy: bool
    detail: str
    state: ServiceState | None = None


def wait_until_healthy(
    ctx: Context,
    manager: ServiceManager,
    service: Service,
    *,
    timeout: float,
    poll_interval: float,
    sleep: Callable[[float], None],
    previous_start: float | None = None,
    settle: float = 0.0,
) -> Verification:
    """Poll until the service runs and passes its health check, at most `timeout` seconds.

    "Running" right after a restart proves little, so a service must still run
    the same process `settle` seconds after it first looked healthy. A service
    that started anew (`previous_start` differs) and then stopped has crashed
    again: no point waiting out the timeout for it.
    """
    name = object_name(service)
    deadline = time.monotonic() + min(timeout, max(ctx.remaining(), 0))
    detail = "not checked"
    state: ServiceState | None = None
    while True:
        state = manager.inspect(name)
        if not state.exists:
            return Verification(False, f"{name} does not exist", state)
        if state.running and state.health != "unhealthy":
            healthy, detail = True, f"{name} is running"
            if service.health_check is not None:
                healthy, detail = check_health(service.health_check, ctx.run)
            if healthy and _settled(manager, name, state, settle, sleep):
                return Verification(True, detail, state)
            if healthy:
                detail = f"{name} stopped within {settle:g}s of starting"
        elif not state.running:
            detail = f"{name} is {state.status} (exit code {state.exit_code})"
            if state.started_at is not None and state.started_at != previous_start:
                return Verification(False, detail + " after starting again", state)
        else:
            detail = f"{name}: the engine's health check reports unhealthy"
        if time.monotonic() + poll_interval >= deadline:
            return Verification(False, f"not healthy within {timeout:g}s: {detail}", state)
        sleep(poll_interval)


def _settled(
    manager: ServiceManager,
    name: str,
    state: ServiceState,
    settle: float,
    sleep: Callable[[float], None],
) -> bool:
    """Still running, and still the same start, `settle` seconds later."""
    if settle <= 0:
        return True
    sleep(settle)
    again = manager.inspect(name)
    return again.running and again.started_at == state.started_at


class _Timed(Protocol):
    @property
    def timeout_seconds(self) -> float: ...


ConfigT = TypeVar("ConfigT", bound=_Timed)


class ServicePlaybook(Playbook, Generic[ConfigT]):
    """What the service playbooks share: a declared `service` parameter and its manager,
    and their own section of `playbooks.settings`, validated by `settings_model`."""

    Parameters = ServiceParameters
    settings_model: ClassVar[type[Any]]  # the ConfigT of the subclass

    def __init__(self, settings: Settings | None = None, config: ConfigT | None = None) -> None:
        self.settings = settings or Settings()
        self.config: ConfigT = config if config is not None else self.settings_model()
        self.timeout = self.config.timeout_seconds
        self.sleep: Callable[[float], None] = time.sleep

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(settings, cls.playbook_settings(settings, cls.settings_model))

    def parse_parameters(self, raw: Mapping[str, Any]) -> BaseModel:
        """The name pattern first (pydantic), then: is it declared? Both before anything runs."""
        params = super().parse_parameters(raw)
        assert isinstance(params, ServiceParameters)
        if self.settings.service(params.service) is None:
            declared = [service.name for service in self.settings.services]
            hint = close_matches(params.service, declared) or (
                f" (declared: {', '.join(declared)})" if declared else " (none are declared)"
            )
            raise ParameterError(
                self.name, "service", f"{params.service!r} is not a declared service{hint}"
            )
        return params

    def target(self, params: BaseModel) -> str:
        assert isinstance(params, ServiceParameters)
        return params.service

    def service(self, params: BaseModel) -> Service:
        assert isinstance(params, ServiceParameters)
        service = self.settings.service(params.service)
        if service is None:  # parse_parameters let it through, so the config changed since
            raise ParameterError(self.name, "service", f"{params.service!r} is not declared")
        return service


class ServiceRestart(ServicePlaybook[ServiceRestartSettings]):
    """Restart a declared service gracefully, then wait for it to be healthy."""

    name: ClassVar[str] = "service-restart"
    description: ClassVar[str] = (
        "Restart a declared service gracefully (stop timeout, then start) and verify it is "
        "healthy; no diagnosis"
    )
    risk: ClassVar[Risk] = "low"

    settings_model = ServiceRestartSettings

    def plan(self, ctx: Context, params: BaseModel) -> Plan:
        service = self.service(params)
        manager = manager_for(service, ctx.run)
        name = object_name(service)
        check = describe_check(service)
        return Plan(
            (
                Action(
                    f"restart {service.name} (stop timeout {self.config.stop_timeout_seconds:g}s)",
                    argv=manager.restart_argv(name, self.config.stop_timeout_seconds),
                ),
                Action(
                    f"verify {service.name} is healthy within "
                    f"{self.config.verify_timeout_seconds:g}s ({check})"
                ),
            ),
            summary=f"restart {service.name} ({service.manager} {name})",
        )

    def execute(self, ctx: Context, plan: Plan, params: BaseModel) -> Result:
        service = self.service(params)
        manager = manager_for(service, ctx.run)
        name = object_name(service)
        before = manager.inspect(name)
        if not before.exists:
            return Result(
                "failure", f"{service.manager} has no {name}", (plan.actions[0].render(),)
            )
        try:
            manager.restart(name, self.config.stop_timeout_seconds)
        except ServiceError as error:
            return Result("failure", error.message, (plan.actions[0].render(),))
        verification = wait_until_healthy(
            ctx,
            manager,
            service,
            timeout=self.config.verify_timeout_seconds,
            poll_interval=self.config.poll_interval_seconds,
            sleep=self.sleep,
            previous_start=before.started_at,
            settle=self.config.settle_seconds,
        )
        actions = tuple(action.render() for action in plan.actions)
        impacts = (Impact("service_restarted", 1, service.name),)
        if verification.healthy:
            return Result(
                "success", f"{service.name} restarted: {verification.detail}", actions, impacts
            )
        return Result(
            "failure",
            f"{service.name} restarted but {verification.detail}",
            actions,
            impacts,
        )


def describe_check(service: Service) -> str:
    """The health check in words, for plans."""
    check = service.health_check
    if check is None:
        return "running; no health check declared"
    if check.command is not None:
        import shlex

        return f"health command: {shlex.join(check.command)}"
    if check.http is not None:
        return f"HTTP GET {check.http} answers 2xx/3xx"
    return f"TCP {check.host}:{check.tcp} accepts connections"
