"""The playbook contract: parameters, plan, execute, verify, rollback.

A playbook is asked for its plan first (the exact actions; `--dry-run` stops
there and prints it), then executes the plan, then verifies the post-condition.

    class Hello(Playbook):
        name = "hello"
        description = "Says hello"
        class Parameters(BaseModel):
            who: str = "world"
        def plan(self, ctx, params):
            return Plan([Action("say hello", argv=("echo", f"hello {params.who}"))])
        def execute(self, ctx, plan):
            ...
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from remediate.clock import Clock
from remediate.config.models import Retries, Settings
from remediate.errors import ParameterError
from remediate.system.process import Completed, ProcessRunner

SettingsModel = TypeVar("SettingsModel", bound=BaseModel)
Risk = Literal["low", "medium", "high"]
Status = Literal["success", "failure", "timeout", "skipped"]
EXCERPT = 500


@dataclass(frozen=True)
class Action:
    """One step of a plan: what it does in words, and the exact argv when it runs a command."""

    description: str
    argv: tuple[str, ...] | None = None

    def render(self) -> str:
        if self.argv is None:
            return self.description
        import shlex

        return f"{self.description}: {shlex.join(self.argv)}"


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    summary: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Impact:
    """A figure the metrics and reports use: bytes_reclaimed, service_restarted, ..."""

    kind: str
    value: float
    subject: str = ""


@dataclass(frozen=True)
class Result:
    status: Status
    summary: str = ""
    actions: tuple[str, ...] = ()
    impacts: tuple[Impact, ...] = ()
    root_cause: str | None = None
    stdout: str = ""
    stderr: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("success", "skipped")


class PlaybookTimeout(Exception):
    """The playbook's deadline passed; the runner records the execution as `timeout`."""


@dataclass
class Context:
    """What a playbook may use: settings, the one subprocess seam, the clock, its deadline."""

    settings: Settings
    runner: ProcessRunner
    clock: Clock
    deadline: float  # time.monotonic() value
    dry_run: bool = False
    log: list[str] = field(default_factory=list)
    # Set by the pipeline: submit another request through the gate and run it if admitted
    # (predictive-maintenance submits its preemptive playbook this way). Returns
    # (decision, report or None).
    submit: Callable[[Any], tuple[Any, Any]] | None = None

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> Completed:
        """Run a command within both its own timeout and the playbook's deadline."""
        remaining = self.remaining()
        if remaining <= 0:
            raise PlaybookTimeout("the playbook's timeout passed before " + argv[0])
        limit = min(timeout, remaining) if timeout else remaining
        completed = self.runner(argv, timeout=limit, env=env, cwd=cwd)
        if completed.timed_out and limit == remaining:
            raise PlaybookTimeout(f"the playbook's timeout passed while running {argv[0]}")
        return completed


class NoParameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Playbook:
    """Base class: subclasses set the class attributes and implement plan and execute."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    risk: ClassVar[Risk] = "low"
    requires_confirmation: ClassVar[bool] = False
    timeout: float = 300.0
    retries: Retries = Retries()
    Parameters: type[BaseModel] = NoParameters

    @classmethod
    def from_settings(cls, settings: Settings) -> Playbook:
        """Build the playbook from the config; built-ins read `settings.playbooks.settings[name]`
        through `playbook_settings` and validate it with their own model."""
        return cls()

    @classmethod
    def playbook_settings(cls, settings: Settings, model: type[SettingsModel]) -> SettingsModel:
        """This playbook's section of `playbooks.settings`, validated; errors name the field."""
        from remediate.errors import ConfigError

        raw = settings.playbooks.settings.get(cls.name, {})
        try:
            return model.model_validate(raw)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ConfigError(
                first["msg"],
                field=f"playbooks.settings.{cls.name}" + (f".{where}" if where else ""),
            ) from None

    def parse_parameters(self, raw: Mapping[str, Any]) -> BaseModel:
        """Validate raw values (CLI strings, alert labels) against the parameter model."""
        known = set(self.Parameters.model_fields)
        for key in raw:
            if key not in known:
                from remediate.errors import close_matches

                hint = close_matches(key, known) or (
                    f" (parameters: {', '.join(sorted(known))})" if known else " (it takes none)"
                )
                raise ParameterError(self.name, key, f"not a parameter of this playbook{hint}")
        try:
            return self.Parameters.model_validate(dict(raw))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "(parameters)"
            raise ParameterError(self.name, where, first["msg"]) from None

    def parameter_schema(self) -> dict[str, Any]:
        return self.Parameters.model_json_schema()

    def target(self, params: BaseModel) -> str:
        """What the lease is taken on, with the playbook name: the service, the mount..."""
        return "-"

    def plan(self, ctx: Context, params: BaseModel) -> Plan:
        raise NotImplementedError

    def execute(self, ctx: Context, plan: Plan, params: BaseModel) -> Result:
        raise NotImplementedError

    def verify(self, ctx: Context, params: BaseModel, result: Result) -> Result:
        return result

    def rollback(self, ctx: Context, params: BaseModel, result: Result) -> Result | None:
        return None


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """The last `limit` characters: the end of output is where the reason usually is."""
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]
