"""The whole configuration as frozen pydantic models (extra keys are errors).

Every section has the seeds' conservative defaults, so an empty file, or no
file at all, gives a working setup: the seed's nine routes, its safety numbers
and service overrides, SQLite state under the XDG state directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- safety ---------------------------------------------------------------------------


class Idempotency(Model):
    """An alert key seen within the window executes once."""

    window_minutes: float = Field(5, ge=0)
    key_fields: tuple[str, ...] = ("alertname", "instance", "service")


class RateLimitRule(Model):
    """An extra sliding-window limit keyed by any of: playbook, alertname, source, labels.X.

    Example: at most 2 executions per playbook and instance per hour, so one
    flapping host cannot spend the whole fleet's budget.
    """

    name: Name
    key: tuple[str, ...] = Field(min_length=1)
    max_executions: int = Field(ge=0)
    window_minutes: float = Field(60, gt=0)

    @field_validator("key")
    @classmethod
    def _known_key_parts(cls, key: tuple[str, ...]) -> tuple[str, ...]:
        for part in key:
            if part not in {"playbook", "alertname", "source", "target"} and not re.fullmatch(
                r"labels\.[A-Za-z_][A-Za-z0-9_]*", part
            ):
                raise ValueError(
                    f"unknown key part {part!r}: use playbook, alertname, source, target "
                    "or labels.NAME"
                )
        return key


class RateLimits(Model):
    max_executions_per_hour: int = Field(5, ge=0)
    max_executions_per_alert: int = Field(3, ge=0)
    cooldown_minutes: float = Field(15, ge=0)
    rules: tuple[RateLimitRule, ...] = ()


class CircuitBreaker(Model):
    failure_threshold: int = Field(3, ge=1)
    reset_timeout_minutes: float = Field(30, ge=0)


class Safety(Model):
    idempotency: Idempotency = Idempotency()
    rate_limits: RateLimits = RateLimits()
    circuit_breaker: CircuitBreaker = CircuitBreaker()
    confidence_threshold: float = Field(90, ge=0, le=100)
    service_overrides: tuple[str, ...] = (
        "traefik",
        "authelia",
        "prometheus",
        "alertmanager",
        "grafana",
        "loki",
    )
    override_labels: tuple[str, ...] = ("service", "name", "container")
    approval_ttl_minutes: float = Field(60, gt=0)
    # An execution whose lease is this long past its timeout is declared interrupted.
    lease_grace_seconds: float = Field(60, ge=0)
    # What happens to an execution a crash interrupted: ask an operator (escalate), run
    # it again through a new attempt (resume), or only record it.
    on_interrupted: Literal["escalate", "resume", "record"] = "escalate"


# --- routes ---------------------------------------------------------------------------


class Route(Model):
    """Alert name -> playbook (or chain). `playbook: null` means investigation only."""

    alert: str = Field(min_length=1)
    playbook: Name | None = None
    chain: Name | None = None
    confidence: float = Field(0, ge=0, le=100)
    priority: Literal["low", "medium", "high", "critical"] = "medium"
    requires_confirmation: bool = False
    parameters: dict[str, str] = Field(default_factory=dict)
    description: str = ""

    @model_validator(mode="after")
    def _one_target(self) -> Route:
        if self.playbook and self.chain:
            raise ValueError("a route names a playbook or a chain, not both")
        from remediate.webhook.routing import unsupported

        for name, template in self.parameters.items():
            if unsupported(template):
                raise ValueError(
                    f"parameters.{name}: unsupported template {template!r} (use "
                    "{{.Labels.x}}, {{.Annotations.x}}, {{.CommonLabels.x}}, "
                    "{{.CommonAnnotations.x}} or {{.GroupLabels.x}})"
                )
        return self

    @property
    def target(self) -> str | None:
        return self.playbook or self.chain


# --- services -------------------------------------------------------------------------


class HealthCheck(Model):
    command: tuple[str, ...] | None = None
    http: str | None = None
    tcp: int | None = Field(None, ge=1, le=65535)
    host: str = "127.0.0.1"
    timeout_seconds: float = Field(5, gt=0)

    @model_validator(mode="after")
    def _exactly_one(self) -> HealthCheck:
        given = [x for x in (self.command, self.http, self.tcp) if x is not None]
        if len(given) != 1:
            raise ValueError("a health check has exactly one of: command, http, tcp")
        return self


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4}


def parse_size(value: int | str) -> int:
    """Bytes from 1048576, "512MiB", "2G", "1.5GiB"."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"not a size: {value!r} (examples: 512MiB, 2G, 1048576)")
    number, unit = float(match.group(1)), (match.group(2) or "").upper().rstrip("B")
    if unit.endswith("I"):
        return int(number * 1024 ** ("KMGT".index(unit[0]) + 1))
    return int(number * _UNITS[unit])


class Service(Model):
    name: Name
    manager: Literal["podman", "docker", "systemd"] = "podman"
    container: str | None = None
    unit: str | None = None
    health_check: HealthCheck | None = None
    depends_on: tuple[Name, ...] = ()
    memory_budget: int | None = None
    image: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    ports: tuple[str, ...] = ()
    command: tuple[str, ...] | None = None
    memory_limit: int | None = None

    @field_validator("memory_budget", "memory_limit", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return parse_size(value) if isinstance(value, int | str) else value


# --- playbooks ------------------------------------------------------------------------


class Parameter(Model):
    """A typed, validated parameter of a command playbook."""

    type: Literal["string", "integer", "number", "boolean"] = "string"
    description: str = ""
    required: bool = False
    default: str | int | float | bool | None = None
    pattern: str | None = None
    choices: tuple[str | int | float, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int = Field(256, ge=1)
    # A value that starts with "-" could be read as an option by the command.
    allow_leading_dash: bool = False

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"pattern does not compile: {error}") from None
        return pattern


class Retries(Model):
    attempts: int = Field(1, ge=1, le=10)
    backoff_seconds: float = Field(1, ge=0)
    multiplier: float = Field(2, ge=1)
    max_backoff_seconds: float = Field(60, ge=0)
    jitter: bool = True
    # Only these outcomes are treated as transient and retried.
    on: tuple[Literal["failure", "timeout"], ...] = ("failure",)


class CommandStep(Model):
    name: Name
    argv: tuple[str, ...] = Field(min_length=1)
    timeout: float | None = Field(None, gt=0)
    allow_failure: bool = False


class CommandPlaybook(Model):
    """A playbook written in YAML: argv steps with validated parameters, never a shell string."""

    name: Name
    description: str = ""
    risk: Literal["low", "medium", "high"] = "medium"
    requires_confirmation: bool = False
    timeout: float = Field(300, gt=0)
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)
    steps: tuple[CommandStep, ...] = Field(min_length=1)
    verify: tuple[CommandStep, ...] = ()
    rollback: tuple[CommandStep, ...] = ()
    retries: Retries = Retries()
    target_parameter: str | None = None

    @model_validator(mode="after")
    def _placeholders_are_declared(self) -> CommandPlaybook:
        from remediate.playbooks.template import placeholders

        for group in ("steps", "verify", "rollback"):
            for step in getattr(self, group):
                for arg in step.argv:
                    for name in placeholders(arg):
                        if name not in self.parameters:
                            raise ValueError(
                                f"{group} {step.name!r} uses {{{name}}}, "
                                "which is not a declared parameter"
                            )
        if self.target_parameter and self.target_parameter not in self.parameters:
            raise ValueError(f"target_parameter {self.target_parameter!r} is not a parameter")
        return self


class Playbooks(Model):
    directories: tuple[Path, ...] = ()
    commands: tuple[CommandPlaybook, ...] = ()
    settings: dict[str, dict[str, Any]] = Field(default_factory=dict)
    default_timeout: float = Field(300, gt=0)


# --- chains ---------------------------------------------------------------------------


class ChainStep(Model):
    name: Name
    parameters: dict[str, str | int | float | bool] = Field(default_factory=dict)
    timeout: float | None = Field(None, gt=0)
    condition: str | None = None
    on_failure: Literal["skip", "abort", "continue"] | None = None

    @field_validator("condition")
    @classmethod
    def _condition_parses(cls, condition: str | None) -> str | None:
        if condition is not None:
            from remediate.chains.conditions import validate

            validate(condition)
        return condition


class Chain(Model):
    name: Name
    description: str = ""
    risk_level: Literal["low", "medium", "high"] = "medium"
    requires_confirmation: bool = False
    playbooks: tuple[ChainStep, ...] = Field(min_length=1)
    execution_strategy: Literal["sequential"] = "sequential"
    strategy: Literal["continue-on-error", "stop-on-failure", "rollback-on-failure"] = (
        "stop-on-failure"
    )
    max_duration: float = Field(900, gt=0)
    # Conditions that must all hold before the chain starts: "the system is not unstable".
    preflight: tuple[str, ...] = ("recent_failures < 5",)

    @field_validator("preflight")
    @classmethod
    def _preflight_parses(cls, conditions: tuple[str, ...]) -> tuple[str, ...]:
        from remediate.chains.conditions import validate

        for condition in conditions:
            validate(condition, earlier_steps=())
        return conditions

    @model_validator(mode="after")
    def _steps_read_earlier_steps(self) -> Chain:
        from remediate.chains.conditions import validate

        for position, step in enumerate(self.playbooks):
            if step.condition is not None:
                earlier = [before.name for before in self.playbooks[:position]]
                try:
                    validate(step.condition, earlier_steps=earlier)
                except ValueError as error:
                    raise ValueError(f"playbooks[{position}].condition: {error}") from None
        return self


# --- schedules, notifications, outside services ---------------------------------------


class Schedule(Model):
    name: Name
    playbook: Name | None = None
    chain: Name | None = None
    task: Literal["observe", "monthly-report"] | None = None
    calendar: str = Field(min_length=1)
    parameters: dict[str, str | int | float | bool] = Field(default_factory=dict)
    # A schedule is an operator's standing decision: it confirms playbooks that require it.
    confirmed: bool = False
    enabled: bool = True

    @model_validator(mode="after")
    def _one_target(self) -> Schedule:
        targets = [x for x in (self.playbook, self.chain, self.task) if x]
        if len(targets) != 1:
            raise ValueError("a schedule names exactly one of: playbook, chain, task")
        return self


class Schedules(Model):
    runner: Literal["systemd", "embedded"] = "systemd"
    items: tuple[Schedule, ...] = ()


class Notifications(Model):
    urls: tuple[str, ...] = ()
    on: tuple[Literal["escalated", "failure", "success", "blocked"], ...] = (
        "escalated",
        "failure",
    )


class Endpoint(Model):
    url: str | None = None
    timeout_seconds: float = Field(10, gt=0)


# --- where things live ----------------------------------------------------------------


def xdg_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "remediate"


def xdg_config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "remediate"


class State(Model):
    directory: Path | None = None
    url: str | None = None
    audit_log: Path | None = None
    busy_timeout_seconds: float = Field(5, gt=0)

    @field_validator("url")
    @classmethod
    def _supported(cls, url: str | None) -> str | None:
        if url is not None and not re.match(r"^(sqlite|postgresql)(\+\w+)?://", url):
            raise ValueError("state.url must start with sqlite:// or postgresql://")
        return url

    def resolved_directory(self) -> Path:
        return self.directory or xdg_state_dir()

    def resolved_url(self) -> str:
        return self.url or f"sqlite:///{self.resolved_directory() / 'remediate.db'}"

    def resolved_audit_log(self) -> Path:
        return self.audit_log or self.resolved_directory() / "decisions.jsonl"


class Metrics(Model):
    # node-exporter textfile; "" turns it off. Default: <state dir>/remediate.prom
    textfile: Path | None = None
    enabled_textfile: bool = True
    duration_buckets: tuple[float, ...] = (1, 5, 15, 30, 60, 120, 300, 600, 1800)


class Analytics(Model):
    """Figures the reports need that the history cannot tell: what a fix costs by hand."""

    manual_minutes: dict[str, float] = Field(default_factory=dict)
    default_manual_minutes: float = Field(30, gt=0)
    # Below this many executions in the window a playbook is not scored.
    min_executions: int = Field(5, ge=1)


class DecisionRule(Model):
    """A row of the autonomous decision matrix: a finding on a resource -> a playbook or chain.

    `parameters` values are literal, or exactly "{subject}" (the finding's mount or service).
    """

    # Only critical forecasts are acted on (DESIGN §4): there is no forecast.warning rule.
    finding: Literal["forecast.critical", "container.down", "alert.firing"]
    resource: str = Field("*", min_length=1, max_length=256)  # fnmatch pattern: "disk:*"
    playbook: Name | None = None
    chain: Name | None = None
    parameters: dict[str, str] = Field(default_factory=dict)
    confidence: float = Field(95, ge=0, le=100)
    risk: Literal["low", "medium", "high"] = "low"

    @model_validator(mode="after")
    def _one_target(self) -> DecisionRule:
        if (self.playbook is None) == (self.chain is None):
            raise ValueError("a decision names exactly one of: playbook, chain")
        for name, value in self.parameters.items():
            if "{" in value and value != "{subject}":
                raise ValueError(f"parameters.{name}: only the whole value {{subject}} is replaced")
        return self


class AccuracyBreaker(Model):
    """Pauses predictive actions while the rolling forecast accuracy is below the threshold."""

    threshold: float = Field(0.6, ge=0, le=1)
    min_scored: int = Field(10, ge=1)
    window_days: float = Field(30, gt=0)


def _default_decisions() -> tuple[DecisionRule, ...]:
    return (
        DecisionRule(
            finding="forecast.critical",
            resource="disk:*",
            playbook="disk-cleanup",
            parameters={"mount": "{subject}"},
            confidence=95,
            risk="low",
        ),
    )


class Autonomous(Model):
    """Sampling, forecasting and the observe-orient-decide-act loop (docs/forecasting.md)."""

    sample_interval_seconds: float = Field(300, ge=1)
    retention_days: float = Field(30, gt=0)
    horizon_days: float = Field(7, gt=0)
    window_days: float = Field(14, gt=0)
    critical_percent: float = Field(85, gt=0, le=100)
    warning_percent: float = Field(75, gt=0, le=100)
    # Below these the forecast's confidence is scaled down: too short a history.
    min_samples: int = Field(12, ge=3)
    min_history_hours: float = Field(24, gt=0)
    # A 95% prediction interval this wide (± percentage points) at the horizon means
    # confidence 0; a forecast this far off its actual value scores 0.
    tolerance_percent: float = Field(10, gt=0, le=100)
    min_confidence: float = Field(80, ge=0, le=100)
    max_risk: Literal["low", "medium", "high"] = "low"
    accuracy: AccuracyBreaker = AccuracyBreaker()
    decisions: tuple[DecisionRule, ...] = Field(default_factory=_default_decisions)
    # Mounts sampled besides the real (non-pseudo) filesystems psutil lists.
    mounts: tuple[Path, ...] = ()
    containers: bool = True


class Server(Model):
    bind: str = "127.0.0.1"
    port: int = Field(9096, ge=0, le=65535)
    token: str | None = None
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    # A client that has not sent its whole body by then gets 408 (slow-client defence).
    body_timeout_seconds: float = Field(10, gt=0)
    # Likewise its request line and headers, from its connection or its request's first
    # byte; a connection that sent nothing by then is closed.
    header_timeout_seconds: float = Field(10, gt=0)


class Settings(Model):
    """The whole configuration. `Settings()` is the built-in default."""

    state: State = State()
    metrics: Metrics = Metrics()
    server: Server = Server()
    safety: Safety = Safety()
    routes: tuple[Route, ...] = Field(default_factory=lambda: _default("routes"))
    services: tuple[Service, ...] = ()
    playbooks: Playbooks = Playbooks()
    chains: tuple[Chain, ...] = Field(default_factory=lambda: _default("chains"))
    schedules: Schedules = Field(default_factory=lambda: _default("schedules"))
    notifications: Notifications = Notifications()
    prometheus: Endpoint = Endpoint()
    alertmanager: Endpoint = Endpoint()
    analytics: Analytics = Analytics()
    autonomous: Autonomous = Autonomous()

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        for section, items, key in (
            ("routes", self.routes, "alert"),
            ("services", self.services, "name"),
            ("chains", self.chains, "name"),
            ("playbooks.commands", self.playbooks.commands, "name"),
        ):
            seen: set[str] = set()
            for item in items:
                value = getattr(item, key)
                if value in seen:
                    raise ValueError(f"{section}: {key} {value!r} appears twice")
                seen.add(value)
        return self

    def route_for(self, alertname: str) -> Route | None:
        for route in self.routes:
            if route.alert == alertname:
                return route
        return None

    def service(self, name: str) -> Service | None:
        for service in self.services:
            if service.name == name:
                return service
        return None

    def textfile_path(self) -> Path | None:
        if not self.metrics.enabled_textfile:
            return None
        return self.metrics.textfile or self.state.resolved_directory() / "remediate.prom"


def _default(section: str) -> Any:
    from remediate.config.defaults import DEFAULTS

    return DEFAULTS[section]
