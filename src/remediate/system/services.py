"""Service managers: podman and docker containers, systemd user units, behind one protocol.

    manager = manager_for(service, ctx.run)
    state = manager.inspect(object_name(service))
    if not state.running:
        manager.restart(object_name(service), stop_timeout=10)

Podman and Docker share `ContainerManager` (the same CLI shape, JSON `inspect`);
systemd user units go through `systemctl --user show/restart`. Every command
runs through the `run` callable handed in (the playbook's `ctx.run`), as an
argv list. Output that cannot be parsed raises `ServiceError` naming the command.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from remediate.config.models import Service
from remediate.errors import RemediateError
from remediate.system.process import Completed

__all__ = [
    "ContainerManager",
    "Run",
    "ServiceError",
    "ServiceEvent",
    "ServiceManager",
    "ServiceState",
    "SystemdManager",
    "create_argv",
    "manager_for",
    "normalize_port",
    "object_name",
]

COMMAND_TIMEOUT_SECONDS = 60.0
ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,254}$")
IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/:@]{0,254}$")
PORT = re.compile(
    r"^(?:(?P<ip>\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:]+\]):)?"
    r"(?:(?P<host>\d{1,5}):)?(?P<container>\d{1,5})(?:/(?P<protocol>tcp|udp|sctp))?$"
)


class ServiceError(RemediateError):
    """A service manager command failed or printed something we cannot read."""

    def __init__(self, command: Sequence[str], reason: str) -> None:
        super().__init__(f"{' '.join(command[:3])}: {reason}")
        self.command = tuple(command)
        self.reason = reason


class Run(Protocol):
    """The subprocess seam: `Context.run` (argv list, timeout) fits it."""

    def __call__(self, argv: Sequence[str], *, timeout: float | None = None) -> Completed: ...


@dataclass(frozen=True)
class ServiceState:
    """What a manager reports about one container or unit; `exists=False` and nothing else
    when there is no such thing."""

    name: str
    exists: bool
    running: bool = False
    status: str = "missing"
    exit_code: int | None = None
    oom_killed: bool = False
    restart_count: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    health: str | None = None  # healthy, unhealthy, starting, or None without an engine check
    memory_usage: int | None = None
    memory_limit: int | None = None
    image: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[str, ...] = ()
    command: tuple[str, ...] | None = None
    error: str = ""  # the engine's own words: State.Error, systemd's Result


@dataclass(frozen=True)
class ServiceEvent:
    """A lifecycle event from the engine's log: start, died, kill, oom, stop."""

    time: float
    action: str
    exit_code: int | None = None


class ServiceManager(Protocol):
    """One engine's verbs; argv builders let a plan show the exact command before it runs."""

    kind: str

    def inspect(self, name: str) -> ServiceState: ...

    def events(self, name: str, since: float) -> list[ServiceEvent]: ...

    def start_argv(self, name: str) -> tuple[str, ...]: ...

    def stop_argv(self, name: str, stop_timeout: float) -> tuple[str, ...]: ...

    def restart_argv(self, name: str, stop_timeout: float) -> tuple[str, ...]: ...

    def remove_argv(self, name: str) -> tuple[str, ...]: ...

    def create_argv(self, service: Service) -> tuple[str, ...]: ...

    def start(self, name: str) -> Completed: ...

    def stop(self, name: str, stop_timeout: float) -> Completed: ...

    def restart(self, name: str, stop_timeout: float) -> Completed: ...

    def remove(self, name: str) -> Completed: ...

    def create(self, service: Service) -> Completed: ...

    def container_memory(self) -> dict[str, int]: ...


def object_name(service: Service) -> str:
    """The engine's name for a service: its container, its unit, or the service name."""
    if service.manager == "systemd":
        unit = service.unit or service.name
        return unit if "." in unit else unit + ".service"
    return service.container or service.name


def manager_for(service: Service, run: Run) -> ServiceManager:
    """The manager for a declared service; `run` is the playbook's `ctx.run`."""
    if service.manager == "systemd":
        return SystemdManager(run)
    return ContainerManager(service.manager, run)


def _checked(run: Run, argv: Sequence[str], timeout: float) -> Completed:
    completed = run(list(argv), timeout=timeout)
    if completed.timed_out:
        raise ServiceError(argv, f"timed out after {timeout:g}s")
    if completed.returncode != 0:
        reason = (completed.stderr or completed.stdout).strip().splitlines()
        raise ServiceError(
            argv, f"exited {completed.returncode}: {reason[-1] if reason else 'no output'}"
        )
    return completed


# --- containers: podman and docker ------------------------------------------------------


def parse_timestamp(value: object) -> float | None:
    """RFC 3339 with nanoseconds ("2025-12-24T10:00:00.123456789Z"); the zero time is None."""
    if not isinstance(value, str) or not value or value.startswith("0001-01-01"):
        return None
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", value)
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {value!r}")
    whole, fraction, zone = match.groups()
    parsed = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
    return parsed.timestamp() + (float("0." + fraction) if fraction else 0.0)


def normalize_port(spec: str) -> str:
    """`[ip:][host:]container[/protocol]` in one canonical form, e.g. "127.0.0.1:8080:80/tcp".

    The wildcard address 0.0.0.0 and no address are the same binding.
    """
    match = PORT.match(spec)
    if match is None:
        raise ValueError(f"not a port mapping: {spec!r} (example: 127.0.0.1:8080:80/tcp)")
    ip = match.group("ip") or ""
    if ip == "0.0.0.0":  # noqa: S104 - a value compared, not a bind
        ip = ""
    host = match.group("host") or ""
    parts = [part for part in (ip, host) if part or ip]
    return ":".join([*parts, match.group("container")]) + "/" + (match.group("protocol") or "tcp")


def _ports(bindings: object) -> tuple[str, ...]:
    if not isinstance(bindings, dict):
        return ()
    found: list[str] = []
    for container_port, hosts in bindings.items():
        port, _, protocol = str(container_port).partition("/")
        for host in hosts or ():
            ip, host_port = host.get("HostIp") or "", host.get("HostPort") or ""
            spec = ":".join(part for part in (ip, host_port) if part or ip)
            found.append(normalize_port(f"{spec}:{port}/{protocol or 'tcp'}"))
    return tuple(sorted(found))


def _container_state(name: str, data: Mapping[str, Any]) -> ServiceState:
    state = data["State"]
    config = data.get("Config") or {}
    host = data.get("HostConfig") or {}
    health = state.get("Health") or state.get("Healthcheck") or {}
    env = {}
    for item in config.get("Env") or ():
        key, _, value = str(item).partition("=")
        env[key] = value
    memory = int(host.get("Memory") or 0)
    command = config.get("Cmd")
    return ServiceState(
        name=name,
        exists=True,
        running=bool(state.get("Running")),
        status=str(state.get("Status", "unknown")),
        exit_code=int(state.get("ExitCode", 0)),
        oom_killed=bool(state.get("OOMKilled")),
        restart_count=int(data.get("RestartCount") or 0),
        started_at=parse_timestamp(state.get("StartedAt")),
        finished_at=parse_timestamp(state.get("FinishedAt")),
        health=str(health.get("Status")) if health.get("Status") else None,
        memory_limit=memory or None,
        image=data.get("ImageName") or config.get("Image"),
        env=env,
        labels=dict(config.get("Labels") or {}),
        ports=_ports(host.get("PortBindings")),
        command=tuple(str(arg) for arg in command) if command else None,
        error=str(state.get("Error") or ""),
    )


_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4}
_BINARY = {"kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def _human_bytes(text: str) -> int:
    """Docker's `stats` sizes: "12.5MiB", "1.2GB", "0B"."""
    match = re.match(r"^\s*([\d.]+)\s*([A-Za-z]*)\s*$", text)
    if match is None:
        raise ValueError(f"not a size: {text!r}")
    unit = match.group(2).lower()
    factor = _BINARY.get(unit) or _UNITS.get(unit)
    if factor is None:
        raise ValueError(f"unknown unit in {text!r}")
    return int(float(match.group(1)) * factor)


class ContainerManager:
    """Podman or Docker through its CLI; `binary` is "podman" or "docker".

    The two differ only where noted: podman's `events` stops by itself with
    `--stream=false` where docker needs `--until`; podman's `stats` can print
    raw byte counts where docker prints "12.5MiB / 1GiB".
    """

    def __init__(self, binary: Literal["podman", "docker"], run: Run) -> None:
        self.kind: str = binary
        self.binary = binary
        self.run = run

    def inspect(self, name: str) -> ServiceState:
        argv = (self.binary, "inspect", "--type", "container", name)
        completed = self.run(list(argv), timeout=COMMAND_TIMEOUT_SECONDS)
        if completed.timed_out:
            raise ServiceError(argv, f"timed out after {COMMAND_TIMEOUT_SECONDS:g}s")
        if completed.returncode != 0:
            if "no such" in completed.stderr.lower():
                return ServiceState(name=name, exists=False)
            raise ServiceError(
                argv, f"exited {completed.returncode}: {completed.stderr.strip() or 'no output'}"
            )
        try:
            [data] = json.loads(completed.stdout)
            return _container_state(name, data)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ServiceError(argv, f"cannot parse the output: {error}") from None

    def events(self, name: str, since: float) -> list[ServiceEvent]:
        """Lifecycle events of one container since a time, oldest first."""
        start = datetime.fromtimestamp(since, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        argv = [self.binary, "events", "--since", start, "--filter", f"container={name}"]
        if self.binary == "podman":
            argv += ["--stream=false", "--format", "json"]
        else:  # docker streams forever without --until
            argv += ["--until", "0s", "--format", "{{json .}}"]
        completed = _checked(self.run, argv, COMMAND_TIMEOUT_SECONDS)
        events: list[ServiceEvent] = []
        try:
            for line in completed.stdout.splitlines():
                if not line.strip():
                    continue
                item = json.loads(line)
                if item.get("Type", item.get("type", "container")) != "container":
                    continue
                action = str(item.get("Status") or item.get("Action") or item.get("status"))
                if action == "die":  # docker's word for podman's "died"
                    action = "died"
                if "timeNano" in item:
                    when = int(item["timeNano"]) / 1e9
                else:
                    when = parse_timestamp(item.get("Time") or item.get("time")) or 0.0
                code = item.get("ContainerExitCode")
                if code is None and "Actor" in item:
                    code = (item["Actor"].get("Attributes") or {}).get("exitCode")
                events.append(ServiceEvent(when, action, int(code) if code is not None else None))
        except (ValueError, TypeError, AttributeError) as error:
            raise ServiceError(argv, f"cannot parse the output: {error}") from None
        return sorted(events, key=lambda event: event.time)

    def start_argv(self, name: str) -> tuple[str, ...]:
        return (self.binary, "start", name)

    def stop_argv(self, name: str, stop_timeout: float) -> tuple[str, ...]:
        return (self.binary, "stop", "-t", str(int(stop_timeout)), name)

    def restart_argv(self, name: str, stop_timeout: float) -> tuple[str, ...]:
        return (self.binary, "restart", "-t", str(int(stop_timeout)), name)

    def remove_argv(self, name: str) -> tuple[str, ...]:
        return (self.binary, "rm", "-f", name)

    def create_argv(self, service: Service) -> tuple[str, ...]:
        return create_argv(self.binary, service)

    def start(self, name: str) -> Completed:
        return _checked(self.run, self.start_argv(name), COMMAND_TIMEOUT_SECONDS)

    def stop(self, name: str, stop_timeout: float) -> Completed:
        argv = self.stop_argv(name, stop_timeout)
        return _checked(self.run, argv, stop_timeout + COMMAND_TIMEOUT_SECONDS)

    def restart(self, name: str, stop_timeout: float) -> Completed:
        argv = self.restart_argv(name, stop_timeout)
        return _checked(self.run, argv, stop_timeout + COMMAND_TIMEOUT_SECONDS)

    def remove(self, name: str) -> Completed:
        return _checked(self.run, self.remove_argv(name), COMMAND_TIMEOUT_SECONDS)

    def create(self, service: Service) -> Completed:
        return _checked(self.run, self.create_argv(service), COMMAND_TIMEOUT_SECONDS)

    def container_memory(self) -> dict[str, int]:
        """Memory in use by each running container, name -> bytes."""
        if self.binary == "podman":
            # Podman's Go template can reach the raw struct: bytes, not "12.5MB".
            argv = [
                "podman",
                "stats",
                "--no-stream",
                "--format",
                "{{json .ContainerStats}}",
            ]
        else:
            argv = ["docker", "stats", "--no-stream", "--format", "{{json .}}"]
        completed = _checked(self.run, argv, COMMAND_TIMEOUT_SECONDS)
        memory: dict[str, int] = {}
        try:
            for line in completed.stdout.splitlines():
                if not line.strip():
                    continue
                item = json.loads(line)
                if self.binary == "podman":
                    memory[str(item["Name"])] = int(item["MemUsage"])
                else:
                    used = str(item["MemUsage"]).split("/")[0]
                    memory[str(item["Name"])] = _human_bytes(used)
        except (ValueError, KeyError, TypeError) as error:
            raise ServiceError(argv, f"cannot parse the output: {error}") from None
        return memory


def create_argv(binary: str, service: Service) -> tuple[str, ...]:
    """`BINARY run -d --name ...` from the declaration alone; every value is checked so none
    can be read as an option or reach a shell."""
    if not service.image:
        raise ValueError(f"service {service.name!r} declares no image: cannot create it")
    if not IMAGE.match(service.image):
        raise ValueError(f"service {service.name!r}: image {service.image!r} is not an image name")
    argv = [binary, "run", "-d", "--name", service.container or service.name]
    for key, value in sorted(service.env.items()):
        if not ENV_KEY.match(key):
            raise ValueError(f"service {service.name!r}: env name {key!r} is not a variable name")
        argv += ["--env", f"{key}={value}"]
    for key, value in sorted(service.labels.items()):
        if not LABEL_KEY.match(key):
            raise ValueError(f"service {service.name!r}: label name {key!r} is not allowed")
        argv += ["--label", f"{key}={value}"]
    for port in service.ports:
        normalize_port(port)  # raises on anything that is not a port mapping
        argv += ["-p", port]
    if service.memory_limit:
        argv += ["--memory", str(service.memory_limit)]
    argv.append(service.image)
    argv.extend(service.command or ())
    return tuple(argv)


# --- systemd user units -----------------------------------------------------------------

SYSTEMD_PROPERTIES = (
    "Id",
    "LoadState",
    "ActiveState",
    "SubState",
    "Result",
    "ExecMainCode",
    "ExecMainStatus",
    "ExecMainStartTimestamp",
    "ExecMainExitTimestamp",
    "NRestarts",
    "MemoryCurrent",
    "MemoryMax",
    "Environment",
)
# systemd's CLD_* codes in ExecMainCode: 1 exited (status is the exit code), 2 killed and
# 3 dumped (status is the signal number).
_KILLED_CODES = {"2", "3"}
_UNSET = ("", "[not set]", "infinity", "18446744073709551615", "n/a")


def _systemd_timestamp(value: str) -> float | None:
    """`--timestamp=unix` prints "@1766570040"; the default is "Wed 2025-12-24 10:00:00 UTC"."""
    if value in _UNSET or value == "0":
        return None
    if value.startswith("@"):
        return float(value[1:])
    parsed = datetime.strptime(value.rsplit(" ", 1)[0], "%a %Y-%m-%d %H:%M:%S")
    return parsed.replace(tzinfo=UTC).timestamp()


def _systemd_environment(value: str) -> dict[str, str]:
    """`Environment=A=1 "B=two words"`: systemd quotes an assignment that holds spaces."""
    import shlex

    env: dict[str, str] = {}
    for item in shlex.split(value):
        key, _, setting = item.partition("=")
        env[key] = setting
    return env


class SystemdManager:
    """systemd user units through `systemctl --user`; quadlets are units like any other."""

    kind = "systemd"

    def __init__(self, run: Run) -> None:
        self.run = run

    def show_argv(self, unit: str) -> tuple[str, ...]:
        properties = ",".join(SYSTEMD_PROPERTIES)
        return ("systemctl", "--user", "show", unit, f"--property={properties}", "--timestamp=unix")

    def inspect(self, name: str) -> ServiceState:
        argv = self.show_argv(name)
        completed = _checked(self.run, argv, COMMAND_TIMEOUT_SECONDS)
        properties: dict[str, str] = {}
        for line in completed.stdout.splitlines():
            if not line:
                continue
            key, separator, value = line.partition("=")
            if not separator:
                raise ServiceError(argv, f"cannot parse the output: line {line!r} is not KEY=VALUE")
            properties[key] = value
        try:
            if properties["LoadState"] == "not-found":
                return ServiceState(name=name, exists=False)
            active, sub, result = (
                properties["ActiveState"],
                properties.get("SubState", ""),
                properties.get("Result", ""),
            )
            status = int(properties.get("ExecMainStatus") or 0)
            killed = properties.get("ExecMainCode") in _KILLED_CODES
            memory = properties.get("MemoryCurrent", "")
            limit = properties.get("MemoryMax", "")
            return ServiceState(
                name=name,
                exists=True,
                running=active == "active" and sub == "running",
                status=f"{active}/{sub}" if sub else active,
                # A signal is reported the way container engines do: 128 + signal.
                exit_code=128 + status if killed else status,
                oom_killed=result == "oom-kill",
                restart_count=int(properties.get("NRestarts") or 0),
                started_at=_systemd_timestamp(properties.get("ExecMainStartTimestamp", "")),
                finished_at=_systemd_timestamp(properties.get("ExecMainExitTimestamp", "")),
                memory_usage=None if memory in _UNSET else int(memory),
                memory_limit=None if limit in _UNSET else int(limit),
                env=_systemd_environment(properties.get("Environment", "")),
                error="" if result in ("", "success") else result,
            )
        except (KeyError, ValueError) as error:
            raise ServiceError(argv, f"cannot parse the output: {error}") from None

    def events(self, name: str, since: float) -> list[ServiceEvent]:
        """systemd keeps no event log we can ask without the journal: NRestarts stands in."""
        return []

    def start_argv(self, name: str) -> tuple[str, ...]:
        return ("systemctl", "--user", "start", name)

    def stop_argv(self, name: str, stop_timeout: float) -> tuple[str, ...]:
        return ("systemctl", "--user", "stop", name)

    def restart_argv(self, name: str, stop_timeout: float) -> tuple[str, ...]:
        return ("systemctl", "--user", "restart", name)

    def remove_argv(self, name: str) -> tuple[str, ...]:
        raise ValueError("a systemd unit is reconciled by restarting it, not by removing it")

    def create_argv(self, service: Service) -> tuple[str, ...]:
        raise ValueError("a systemd unit is reconciled by restarting it, not by creating it")

    def start(self, name: str) -> Completed:
        return _checked(self.run, self.start_argv(name), COMMAND_TIMEOUT_SECONDS)

    def stop(self, name: str, stop_timeout: float) -> Completed:
        argv = self.stop_argv(name, stop_timeout)
        return _checked(self.run, argv, stop_timeout + COMMAND_TIMEOUT_SECONDS)

    def restart(self, name: str, stop_timeout: float) -> Completed:
        argv = self.restart_argv(name, stop_timeout)
        return _checked(self.run, argv, stop_timeout + COMMAND_TIMEOUT_SECONDS)

    def remove(self, name: str) -> Completed:
        raise ServiceError(("systemctl", "--user"), "units are not removed")

    def create(self, service: Service) -> Completed:
        raise ServiceError(("systemctl", "--user"), "units are not created")

    def container_memory(self) -> dict[str, int]:
        """Units are not containers: memory per container comes from podman or docker."""
        return {}
