"""Find and load the config file: YAML in, frozen `Settings` out, errors with file:line: field.

    path = find_config_file(None)          # --config, $REMEDIATE_CONFIG, ./remediate.yml, XDG
    settings = load_settings(path)         # None -> the built-in defaults

Every problem in a file is reported at once, each as `file:line: field: reason`, with a
"did you mean" for an unknown key. YAML is read with YAML 1.2 booleans (only true/false):
in YAML 1.1 `on:` — a key of `notifications` and `retries` — would silently become `True`.
"""

from __future__ import annotations

import json
import os
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from remediate.config.models import CommandPlaybook, Settings
from remediate.errors import ConfigError, ConfigErrors, close_matches

__all__ = [
    "find_config_file",
    "load_command_playbook",
    "load_settings",
    "render_default_config",
    "settings_schema",
]

DataPath = tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: yes/no/on/off stay strings."""


_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


# --- finding the file -----------------------------------------------------------------


def find_config_file(
    explicit: str | Path | None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Path | None:
    """The config file to load: --config, $REMEDIATE_CONFIG, ./remediate.yml, then
    $XDG_CONFIG_HOME/remediate/remediate.yml. None means: use the built-in defaults."""
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd
    for given in (explicit, environ.get("REMEDIATE_CONFIG")):
        if given:  # an explicit choice that does not exist is an error, not a fallthrough
            path = cwd / Path(given).expanduser()
            if not path.is_file():
                reason = "not a file" if path.exists() else "no such file"
                raise ConfigError(reason, file=str(path))
            return path
    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    base = environ.get("XDG_CONFIG_HOME", "")
    # The XDG spec says a relative $XDG_CONFIG_HOME is invalid and must be ignored.
    config_home = Path(base) if Path(base).is_absolute() else home / ".config"
    for candidate in (cwd / "remediate.yml", config_home / "remediate" / "remediate.yml"):
        if candidate.is_file():
            return candidate
    return None


# --- loading ----------------------------------------------------------------------------


def load_settings(path: Path | None) -> Settings:
    """Settings from a YAML file (None or an empty file: the defaults); raises ConfigErrors."""
    if path is None:
        return Settings()
    data, lines = _read_yaml(path)
    if data is None:
        return Settings()
    file = str(path)
    data = _resolve_paths(data, path.absolute().parent)
    errors: list[ConfigError] = []
    extra = _load_directories(data, lines, file, errors)
    playbooks = data.get("playbooks")
    if extra and isinstance(playbooks, dict):
        inline = playbooks.get("commands") or []
        if isinstance(inline, list):
            # Instances are not validated again; Settings still checks names are unique.
            data["playbooks"] = {**playbooks, "commands": [*inline, *extra]}
    try:
        settings = Settings.model_validate(data)
    except ValidationError as error:
        errors += _config_errors(error, Settings, data, lines, file)
    if errors:
        raise ConfigErrors(errors)
    return settings


def load_command_playbook(path: Path) -> CommandPlaybook:
    """One command playbook from its own YAML file; raises ConfigErrors naming that file."""
    data, lines = _read_yaml(path)
    if data is None:
        raise ConfigError("empty playbook file", file=str(path))
    try:
        return CommandPlaybook.model_validate(data)
    except ValidationError as error:
        raise ConfigErrors(_config_errors(error, CommandPlaybook, data, lines, str(path))) from None


def _read_yaml(path: Path) -> tuple[dict[str, Any] | None, dict[DataPath, int]]:
    """The top-level mapping (None for an empty document) and the line of every key and item."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read: {error.strerror}", file=str(path)) from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"not UTF-8 text: {error.reason}", file=str(path)) from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" ({error.context})" if error.context else ""
        line = mark.line + 1 if mark else None
        raise ConfigError(
            f"invalid YAML: {error.problem}{where}", file=str(path), line=line
        ) from None
    except yaml.YAMLError as error:
        raise ConfigError(f"invalid YAML: {error}", file=str(path)) from None
    finally:
        loader.dispose()
    if node is None or data is None:
        return None, {}
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else "a single value"
        raise ConfigError(
            f"the top level must be a mapping of sections (key: value), not {kind}",
            file=str(path),
            line=node.start_mark.line + 1,
        )
    lines: dict[DataPath, int] = {(): node.start_mark.line + 1}
    duplicates: list[ConfigError] = []
    _record_lines(node, (), lines, set(), duplicates, str(path))
    if duplicates:  # YAML would silently keep the last one
        raise ConfigErrors(duplicates)
    return data, lines


def _record_lines(
    node: yaml.Node,
    path: DataPath,
    lines: dict[DataPath, int],
    active: set[int],
    duplicates: list[ConfigError],
    file: str,
) -> None:
    if id(node) in active:  # a recursive alias (&a [*a])
        return
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            key, line = str(key_node.value), key_node.start_mark.line + 1
            if key in first and key_node.tag != "tag:yaml.org,2002:merge":
                reason = f"duplicate key (first at line {first[key]})"
                duplicates.append(
                    ConfigError(reason, file=file, line=line, field=_dotted((*path, key)))
                )
            first.setdefault(key, line)
            lines[(*path, key)] = line
            _record_lines(value_node, (*path, key), lines, active, duplicates, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _record_lines(item, (*path, index), lines, active, duplicates, file)
    active.discard(id(node))


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative paths in the file are relative to the file's directory, not to the cwd."""

    def resolve(value: Any) -> Any:
        return str(base / Path(value).expanduser()) if isinstance(value, str) else value

    data = dict(data)
    state = data.get("state")
    if isinstance(state, dict):
        data["state"] = {
            **state,
            **{key: resolve(state[key]) for key in ("directory", "audit_log") if key in state},
        }
    playbooks = data.get("playbooks")
    if isinstance(playbooks, dict) and isinstance(playbooks.get("directories"), list):
        data["playbooks"] = {
            **playbooks,
            "directories": [resolve(item) for item in playbooks["directories"]],
        }
    return data


def _load_directories(
    data: dict[str, Any], lines: dict[DataPath, int], file: str, errors: list[ConfigError]
) -> list[CommandPlaybook]:
    """Each playbooks.directories entry holds command playbooks, one per *.yml / *.yaml file."""
    playbooks = data.get("playbooks")
    directories = playbooks.get("directories") if isinstance(playbooks, dict) else None
    if not isinstance(directories, list):
        return []
    found: list[CommandPlaybook] = []
    for index, directory in enumerate(directories):
        if not isinstance(directory, str):
            continue  # validation reports it
        where = ("playbooks", "directories", index)
        if not Path(directory).is_dir():
            errors.append(
                ConfigError(
                    f"no such directory: {directory}",
                    file=file,
                    line=lines.get(where),
                    field=_dotted(where),
                )
            )
            continue
        files = [*Path(directory).glob("*.yml"), *Path(directory).glob("*.yaml")]
        for path in sorted(files):
            if path.name.startswith("."):  # editor lock and backup files
                continue
            try:
                found.append(load_command_playbook(path))
            except ConfigErrors as error:
                errors += error.errors
            except ConfigError as error:
                errors.append(error)
    return found


# --- pydantic errors -> ConfigError ---------------------------------------------------


def _config_errors(
    error: ValidationError,
    model: type[BaseModel],
    data: dict[str, Any],
    lines: dict[DataPath, int],
    file: str,
) -> list[ConfigError]:
    """One ConfigError per field; the errors of a union's members are merged into one."""
    details = [
        (_data_path(detail["loc"], data, missing=detail["type"] == "missing"), detail)
        for detail in error.errors()
    ]
    # A tuple whose items fail also fails its min_length ("at least 1 item after
    # validation"): noise while the items themselves are reported.
    details = [
        (path, detail)
        for path, detail in details
        if detail["type"] != "too_short"
        or not any(len(other) > len(path) and other[: len(path)] == path for other, _ in details)
    ]
    grouped: dict[DataPath, list[str]] = {}
    for path, detail in details:
        loc = detail["loc"]
        if detail["type"] == "extra_forbidden":
            owner = _owner(model, loc[:-1])
            names = [
                *owner.model_fields,
                *(f.alias for f in owner.model_fields.values() if f.alias),
            ]
            reason = f"unknown key{close_matches(str(loc[-1]), names)}"
        else:
            reason = re.sub(r"^(Value error|Assertion failed), ", "", detail["msg"])
        grouped.setdefault(path, []).append(reason)
    return [
        ConfigError(
            _merge(reasons), file=file, line=_line(path, lines), field=_dotted(path) or None
        )
        for path, reasons in grouped.items()
    ]


def _data_path(loc: tuple[int | str, ...], data: Any, *, missing: bool) -> DataPath:
    """The part of a pydantic loc that names keys and items of the data; union member names
    such as 'int' or 'function-after[...]' are dropped. A missing field keeps its name."""
    path: list[str | int] = []
    for position, element in enumerate(loc):
        if isinstance(data, dict) and str(element) in {str(key) for key in data}:
            data = next(value for key, value in data.items() if str(key) == str(element))
            path.append(str(element))
        elif isinstance(data, list | tuple) and isinstance(element, int) and element < len(data):
            data = data[element]
            path.append(element)
        elif missing and position == len(loc) - 1:
            path.append(element)
    return tuple(path)


def _line(path: DataPath, lines: dict[DataPath, int]) -> int | None:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def _dotted(path: DataPath) -> str:
    out = ""
    for element in path:
        if isinstance(element, int):
            out += f"[{element}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", element):
            out += f".{element}" if out else element
        else:
            out += f"[{element!r}]"
    return out


def _merge(reasons: list[str]) -> str:
    unique = list(dict.fromkeys(reasons))
    prefix = "Input should be "
    if len(unique) > 1 and all(reason.startswith(prefix) for reason in unique):
        tails = [reason.removeprefix(prefix) for reason in unique]
        return f"{prefix}{', '.join(tails[:-1])} or {tails[-1]}"
    return "; ".join(unique)


def _owner(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel]:
    """The model class reached by following loc from model (the class owning an unknown key)."""
    annotation: Any = model
    for element in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields = {f.alias or name: f for name, f in annotation.model_fields.items()}
            fields.update(annotation.model_fields)
            if element in fields:
                annotation = fields[str(element)].annotation
            continue  # a union member name, not a field: stay
        origin, args = get_origin(annotation), get_args(annotation)
        if origin in (tuple, list) and isinstance(element, int) and args:
            annotation = args[0]
        elif origin is dict and len(args) == 2:
            annotation = args[1]
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return model


def _unwrap(annotation: Any) -> Any:
    """Annotated[X, ...] -> X; X | None -> X (a union of several models stays as it is)."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


# --- config init and schema -------------------------------------------------------------


def settings_schema() -> dict[str, Any]:
    """JSON Schema of the config file, for editors (yaml-language-server and the like)."""
    schema = Settings.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "remediate configuration (remediate.yml)"
    return schema


def render_default_config() -> str:
    """The commented file `remediate config init` writes; loading it gives `Settings()`."""
    from remediate.config.defaults import RAW

    s = Settings()
    safety, limits = s.safety, s.safety.rate_limits

    def flow(values: Any) -> str:
        return json.dumps(list(values))

    def block(section: str) -> str:
        text = yaml.safe_dump({section: RAW[section]}, sort_keys=False, width=96)
        return text.rstrip("\n")

    return _TEMPLATE.format(
        s=s,
        safety=safety,
        limits=limits,
        key_fields=flow(safety.idempotency.key_fields),
        overrides=flow(safety.service_overrides),
        override_labels=flow(safety.override_labels),
        buckets=flow(s.metrics.duration_buckets),
        enabled_textfile=json.dumps(s.metrics.enabled_textfile),
        bind=json.dumps(s.server.bind),
        notify_on=flow(s.notifications.on),
        routes=block("routes"),
        chains=block("chains"),
        schedules=block("schedules"),
    )


_TEMPLATE = """\
# remediate configuration, written by `remediate config init`.
#
# Every value below is a built-in default: delete what you do not change.
# Unknown keys are errors (with a "did you mean"), so a typo never goes unnoticed.
# remediate looks for this file at --config, $REMEDIATE_CONFIG, ./remediate.yml and
# $XDG_CONFIG_HOME/remediate/remediate.yml; with no file it uses these same defaults.
# Relative paths are relative to the directory of this file.
# Check your edits with `remediate config check`.

# Where the SQLite database and the JSONL decision log live.
state:
  # directory: /var/lib/remediate         # default: $XDG_STATE_HOME/remediate
  # url: postgresql://remediate@localhost/remediate   # default: SQLite in the directory
  # audit_log: /var/log/remediate/decisions.jsonl      # default: <directory>/decisions.jsonl
  busy_timeout_seconds: {s.state.busy_timeout_seconds}

# Prometheus metrics, also written as a node-exporter textfile.
metrics:
  # textfile: /var/lib/prometheus/node-exporter/remediate.prom  # default: <state dir>
  enabled_textfile: {enabled_textfile}
  duration_buckets: {buckets}

# `remediate serve`: the Alertmanager webhook and the HTTP API.
server:
  bind: {bind}   # any other address is refused without a token
  port: {s.server.port}
  # Keep the token out of this file: use --token-file or $REMEDIATE_WEBHOOK_TOKEN.
  # token: ...
  max_body_bytes: {s.server.max_body_bytes}

# The safety numbers. An alert passes, in order: status (only firing), route, service
# overrides, idempotency, rate limits, circuit breaker, confidence/confirmation.
safety:
  # An alert with the same values of these labels executes once per window.
  idempotency:
    window_minutes: {safety.idempotency.window_minutes}
    key_fields: {key_fields}
  # Counted over a sliding hour.
  rate_limits:
    max_executions_per_hour: {limits.max_executions_per_hour}   # all playbooks together
    max_executions_per_alert: {limits.max_executions_per_alert}  # per alert name, per hour
    cooldown_minutes: {limits.cooldown_minutes}         # per playbook, after each run
    # Extra limits keyed by playbook, alertname, source, target or labels.NAME, e.g.
    # - {{name: per-host, key: [playbook, labels.instance], max_executions: 2}}
    rules: []
  # Per playbook: this many failures in a row open the breaker for reset_timeout_minutes,
  # then one trial run is allowed; a success closes it again.
  circuit_breaker:
    failure_threshold: {safety.circuit_breaker.failure_threshold}
    reset_timeout_minutes: {safety.circuit_breaker.reset_timeout_minutes}
  # A route below this confidence (0-100) asks an operator (`remediate approve ID`).
  confidence_threshold: {safety.confidence_threshold}
  # Alerts whose service/name/container label is one of these never execute.
  service_overrides: {overrides}
  override_labels: {override_labels}
  approval_ttl_minutes: {safety.approval_ttl_minutes}   # a pending approval expires
  # A run whose lease is this far past its timeout is declared interrupted.
  lease_grace_seconds: {safety.lease_grace_seconds}
  # A run a crash interrupted: escalate (ask an operator), resume (run it again), record.
  on_interrupted: {safety.on_interrupted}

# Alert name -> playbook or chain. `playbook: null` means investigation only.
# parameters may use Alertmanager templates such as "{{{{.Labels.name}}}}".
{routes}

# The services remediate may act on, declared once. Example:
# - name: jellyfin
#   manager: podman            # podman, docker or systemd
#   container: jellyfin
#   health_check: {{http: "http://127.0.0.1:8096/health"}}
#   depends_on: [postgres]
#   memory_budget: 2GiB
services: []

playbooks:
  # Each directory holds command playbooks, one per *.yml file (name, parameters, steps).
  directories: []
  # Command playbooks written here: argv steps, never a shell string.
  commands: []
  # Per built-in playbook settings, e.g.
  #   disk-cleanup: {{paths: [{{root: /srv/tmp, pattern: "*.log", min_age_days: 7}}]}}
  settings: {{}}
  default_timeout: {s.playbooks.default_timeout}

# Playbooks run in sequence; each step may have a condition and an on_failure.
{chains}

# Run by systemd timers (runner: systemd) or inside `remediate serve` (runner: embedded).
# confirmed: true is a standing decision that confirms playbooks that require it.
{schedules}

# Where to tell an operator about escalations and failures.
notifications:
  urls: []
  on: {notify_on}

# Outside services read by the predictive and autonomous playbooks.
prometheus:
  # url: http://127.0.0.1:9090
  timeout_seconds: {s.prometheus.timeout_seconds}
alertmanager:
  # url: http://127.0.0.1:9093
  timeout_seconds: {s.alertmanager.timeout_seconds}
"""
