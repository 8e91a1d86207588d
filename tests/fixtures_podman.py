"""Fixtures for live podman tests: a test containers.conf, a tiny busybox image, containers.

No registry is reachable here, so the image is built from busybox-static (see
TESTING.md); crun fails on this machine kind, hence runc and cgroupfs.

    from tests.fixtures_podman import podman_image, container_factory  # noqa: F401
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from remediate.clock import SystemClock
from remediate.config.models import Settings
from remediate.playbooks.base import Context
from remediate.system.process import Completed, ProcessRunner, run_process
from tests.helpers import require_binary, unavailable

__all__ = [
    "IMAGE",
    "READY_COMMAND",
    "ContainerFactory",
    "Recording",
    "container_factory",
    "inspect",
    "live_context",
    "podman",
    "podman_image",
    "ready_check",
    "services_settings",
]

IMAGE = "localhost/remediate-test-bb:latest"
APPLETS = ("sh", "sleep", "echo", "cat", "true", "false", "test", "touch", "rm", "dd", "env", "nc")
CONTAINERS_CONF = """\
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"

[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
"""


def podman(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run podman for a test's own setup (the code under test goes through its runner)."""
    # conmon writes a file named `oom` into its working directory when the kernel
    # OOM-kills a container: keep that out of the checkout.
    completed = subprocess.run(
        ["podman", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=tempfile.gettempdir(),
    )
    if check and completed.returncode != 0:
        pytest.fail(f"podman {' '.join(argv)} exited {completed.returncode}: {completed.stderr}")
    return completed


@pytest.fixture(scope="session")
def podman_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Point CONTAINERS_CONF at a test config for the session and import the busybox image."""
    require_binary("podman", "podman")
    require_binary("runc", "runc")
    busybox = shutil.which("busybox")
    if busybox is None:
        unavailable("busybox not found: apt-get install busybox-static")
    assert busybox is not None
    directory = tmp_path_factory.mktemp("podman")
    conf = directory / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    previous = os.environ.get("CONTAINERS_CONF")
    os.environ["CONTAINERS_CONF"] = str(conf)
    try:
        root = directory / "root"
        (root / "bin").mkdir(parents=True)
        shutil.copy2(busybox, root / "bin" / "busybox")
        for applet in APPLETS:
            (root / "bin" / applet).symlink_to("busybox")
        (root / "tmp").mkdir()
        archive = directory / "image.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(root, arcname=".")
        podman("import", str(archive), IMAGE, timeout=120)
        yield IMAGE
    finally:
        if previous is None:
            os.environ.pop("CONTAINERS_CONF", None)
        else:
            os.environ["CONTAINERS_CONF"] = previous


class ContainerFactory:
    """Runs uniquely named containers; `adopt` a name the code under test creates, so
    teardown removes it too."""

    def __init__(self, image: str) -> None:
        self.image = image
        self.names: list[str] = []

    def __call__(
        self, *options: str, command: Sequence[str] = ("sleep", "1000"), prefix: str = "rt"
    ) -> str:
        name = self.adopt(f"{prefix}-{uuid.uuid4().hex[:10]}")
        podman("run", "-d", "--name", name, *options, self.image, *command)
        return name

    def adopt(self, name: str) -> str:
        self.names.append(name)
        return name

    def remove_all(self) -> None:
        if self.names:
            podman("rm", "-f", "-t", "0", *self.names, check=False)


@pytest.fixture
def container_factory(podman_image: str) -> Iterator[ContainerFactory]:
    """`container_factory(*options, command=(...), prefix="web")` runs one with `podman run -d`
    and returns its name; every one is removed at teardown."""
    factory = ContainerFactory(podman_image)
    yield factory
    factory.remove_all()


class Recording:
    """A ProcessRunner that runs the real command and remembers every argv it was given."""

    def __init__(self, runner: ProcessRunner = run_process) -> None:
        self.runner = runner
        self.calls: list[tuple[str, ...]] = []

    def __call__(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        input: str | None = None,
    ) -> Completed:
        self.calls.append(tuple(argv))
        return self.runner(argv, timeout=timeout, env=env, cwd=cwd, input=input)


def live_context(settings: Settings, runner: ProcessRunner = run_process) -> Context:
    """A playbook context on the real clock with the real (or a recording) runner."""
    return Context(
        settings=settings, runner=runner, clock=SystemClock(), deadline=time.monotonic() + 120
    )


def services_settings(*services: dict[str, object], **sections: object) -> Settings:
    return Settings.model_validate({"services": list(services), **sections})


def inspect(name: str) -> dict[str, Any]:
    """`podman inspect` of one container, for assertions."""
    data: list[dict[str, Any]] = json.loads(podman("inspect", "--type", "container", name).stdout)
    return data[0]


def ready_check(name: str) -> dict[str, object]:
    """A command health check: the container has /tmp/ready (its command touches it)."""
    return {"command": ["podman", "exec", name, "test", "-f", "/tmp/ready"], "timeout_seconds": 10}


# Touches /tmp/ready then sleeps: healthy until a test removes the file.
READY_COMMAND = ("sh", "-c", "touch /tmp/ready; exec sleep 1000")
