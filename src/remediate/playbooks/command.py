"""Command playbooks: YAML with argv steps and typed parameters, run without a shell.

    name: clear-cache
    description: Remove a service's cache directory contents
    risk: low
    parameters:
      service: {type: string, pattern: "^[a-z0-9-]+$", required: true}
    steps:
      - name: clear
        argv: ["find", "/var/cache/{service}", "-mindepth", "1", "-delete"]

Each `{name}` is replaced by the validated value as a whole argv element or
part of one; it never passes through a shell, and a value that starts with
"-" is refused unless the parameter allows it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from remediate.config.models import CommandPlaybook as Spec
from remediate.config.models import CommandStep, Parameter
from remediate.playbooks.base import Action, Context, Plan, Playbook, Result, excerpt
from remediate.playbooks.template import render

_TYPES: dict[str, type] = {"string": str, "integer": int, "number": float, "boolean": bool}


def _no_leading_dash(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("-"):
        raise ValueError("must not start with '-' (it could be read as an option)")
    return value


def _no_control_characters(value: Any) -> Any:
    if isinstance(value, str) and any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not contain control characters (newline, NUL, ...)")
    return value


def _field(spec: Parameter) -> tuple[Any, Any]:
    annotation: Any = _TYPES[spec.type]
    if spec.choices is not None:
        annotation = Literal[tuple(spec.choices)]
    constraints: dict[str, Any] = {"description": spec.description or None}
    if spec.type == "string" and spec.choices is None:
        constraints["max_length"] = spec.max_length
        if spec.pattern:
            constraints["pattern"] = spec.pattern
    if spec.type in ("integer", "number"):
        if spec.minimum is not None:
            constraints["ge"] = spec.minimum
        if spec.maximum is not None:
            constraints["le"] = spec.maximum
    validators: list[Any] = [AfterValidator(_no_control_characters)]
    if not spec.allow_leading_dash:
        validators.append(AfterValidator(_no_leading_dash))
    annotated = Annotated[annotation, Field(**constraints), *validators]
    if spec.required:
        return (annotated, ...)
    if spec.default is None:
        return (annotated | None, None)
    return (annotated, spec.default)


def parameters_model(spec: Spec) -> type[BaseModel]:
    fields = {name: _field(parameter) for name, parameter in spec.parameters.items()}
    return create_model(  # type: ignore[call-overload,no-any-return]
        f"{spec.name}-parameters",
        __config__=ConfigDict(extra="forbid", frozen=True),
        **fields,
    )


class CommandPlaybookRunner(Playbook):
    """A Playbook built from a CommandPlaybook spec."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.name = spec.name  # type: ignore[misc]
        self.description = spec.description  # type: ignore[misc]
        self.risk = spec.risk  # type: ignore[misc]
        self.requires_confirmation = spec.requires_confirmation  # type: ignore[misc]
        self.timeout = spec.timeout
        self.retries = spec.retries
        self.Parameters = parameters_model(spec)

    def target(self, params: BaseModel) -> str:
        if self.spec.target_parameter:
            return str(getattr(params, self.spec.target_parameter))
        return "-"

    def _actions(self, steps: tuple[CommandStep, ...], params: BaseModel) -> tuple[Action, ...]:
        values = params.model_dump()
        return tuple(
            Action(step.name, argv=tuple(render(arg, values) for arg in step.argv))
            for step in steps
        )

    def plan(self, ctx: Context, params: BaseModel) -> Plan:
        actions = self._actions(self.spec.steps, params)
        return Plan(actions, summary=f"{len(actions)} step(s)")

    def _run_steps(
        self, ctx: Context, steps: tuple[CommandStep, ...], actions: tuple[Action, ...]
    ) -> Result:
        done: list[str] = []
        stdout: list[str] = []
        stderr: list[str] = []
        for step, action in zip(steps, actions, strict=True):
            assert action.argv is not None
            completed = ctx.run(action.argv, timeout=step.timeout, env=self.spec.env or None)
            done.append(action.render())
            stdout.append(completed.stdout)
            stderr.append(completed.stderr)
            if completed.timed_out:
                return Result(
                    "timeout",
                    f"step {step.name!r} timed out after {step.timeout}s",
                    tuple(done),
                    stdout=excerpt("".join(stdout)),
                    stderr=excerpt("".join(stderr)),
                )
            if completed.returncode != 0 and not step.allow_failure:
                return Result(
                    "failure",
                    f"step {step.name!r} exited {completed.returncode}",
                    tuple(done),
                    stdout=excerpt("".join(stdout)),
                    stderr=excerpt("".join(stderr)),
                )
        return Result(
            "success",
            f"{len(done)} step(s) done",
            tuple(done),
            stdout=excerpt("".join(stdout)),
            stderr=excerpt("".join(stderr)),
        )

    def execute(self, ctx: Context, plan: Plan, params: BaseModel) -> Result:
        return self._run_steps(ctx, self.spec.steps, plan.actions)

    def verify(self, ctx: Context, params: BaseModel, result: Result) -> Result:
        if not self.spec.verify or result.status != "success":
            return result
        checked = self._run_steps(ctx, self.spec.verify, self._actions(self.spec.verify, params))
        if checked.status == "success":
            return Result(
                "success",
                result.summary + "; verified",
                result.actions + checked.actions,
                result.impacts,
                result.root_cause,
                result.stdout,
                result.stderr,
            )
        return Result(
            "failure",
            "verification failed: " + checked.summary,
            result.actions + checked.actions,
            result.impacts,
            result.root_cause,
            excerpt(result.stdout + checked.stdout),
            excerpt(result.stderr + checked.stderr),
        )

    def rollback(self, ctx: Context, params: BaseModel, result: Result) -> Result | None:
        if not self.spec.rollback:
            return None
        return self._run_steps(ctx, self.spec.rollback, self._actions(self.spec.rollback, params))
