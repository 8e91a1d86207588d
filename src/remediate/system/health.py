"""A declared service's health check: a command, an HTTP GET or a TCP connect.

    health = check_health(service.health_check, ctx.run)
    if not health.healthy:
        print(health.detail)

HTTP counts 2xx and 3xx as healthy (redirects are not followed: a login page
redirect still proves the server answers); anything else, or no answer within
the timeout, is unhealthy. The detail says why, in a line.
"""

from __future__ import annotations

import socket
from typing import NamedTuple

from remediate.config.models import HealthCheck
from remediate.system.services import Run

__all__ = ["Health", "check_health"]


class Health(NamedTuple):
    healthy: bool
    detail: str


def check_health(check: HealthCheck, run: Run) -> Health:
    """Run the one check the declaration names."""
    if check.command is not None:
        return _command(check, run)
    if check.http is not None:
        return _http(check.http, check.timeout_seconds)
    assert check.tcp is not None
    return _tcp(check.host, check.tcp, check.timeout_seconds)


def _command(check: HealthCheck, run: Run) -> Health:
    assert check.command is not None
    completed = run(list(check.command), timeout=check.timeout_seconds)
    name = check.command[0]
    if completed.timed_out:
        return Health(False, f"health command {name} timed out after {check.timeout_seconds:g}s")
    if completed.returncode != 0:
        said = (completed.stderr or completed.stdout).strip().splitlines()
        tail = f": {said[-1][:200]}" if said else ""
        return Health(False, f"health command {name} exited {completed.returncode}{tail}")
    return Health(True, f"health command {name} exited 0")


def _http(url: str, timeout: float) -> Health:
    # urllib.request (with email and more) only when an HTTP check runs: the server
    # imports this module with the playbooks and keeps what it imports.
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None  # a 3xx answer is an answer: report it instead of following it

    if not url.startswith(("http://", "https://")):
        return Health(False, f"health URL {url!r} is not http:// or https://")
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as error:
        status = error.code
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return Health(False, f"GET {url} failed: {reason}")
    if 200 <= status < 400:
        return Health(True, f"GET {url} answered {status}")
    return Health(False, f"GET {url} answered {status}")


def _tcp(host: str, port: int, timeout: float) -> Health:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return Health(True, f"TCP {host}:{port} accepts connections")
    except OSError as error:
        return Health(False, f"TCP {host}:{port}: {error.strerror or error}")
