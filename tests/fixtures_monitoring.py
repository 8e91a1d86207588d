"""Real Prometheus and Alertmanager for end-to-end tests, on free loopback ports.

exporter = Exporter()                      # a /metrics endpoint whose values the test sets
exporter.set('test_up{name="web"}', 0)
prometheus(tmp_path, targets=[exporter.address], rules=RULES, alertmanager=am)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import yaml

from tests.helpers import require_binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Exporter:
    """A tiny Prometheus target: the test decides what it exposes."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self.sources: dict[str, Callable[[], float]] = {}
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                lines = [f"{name} {value}" for name, value in exporter.values.items()]
                lines += [f"{name} {source()}" for name, source in exporter.sources.items()]
                body = ("\n".join(lines) + "\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def set(self, sample: str, value: float) -> None:
        self.values[sample] = value

    def follow(self, sample: str, source: Callable[[], float]) -> None:
        """Expose `sample` with the value `source()` returns at each scrape."""
        self.sources[sample] = source

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Process:
    def __init__(self, argv: list[str], log: Path, ready_url: str) -> None:
        self.log = log
        with log.open("w") as output:
            self.process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT)
        for _ in range(300):  # bounded: up to ~30 s for the first answer
            if self.process.poll() is not None:
                pytest.fail(f"{argv[0]} exited {self.process.returncode}: {log.read_text()}")
            try:
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"{argv[0]} did not become ready: {log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_alertmanager(directory: Path, *, webhook_url: str, token: str) -> tuple[Process, str]:
    binary = require_binary("prometheus-alertmanager", "prometheus-alertmanager")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "token").write_text(token)
    config = {
        "route": {
            "receiver": "remediate",
            "group_by": ["alertname", "name"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "remediate",
                "webhook_configs": [
                    {
                        "url": webhook_url,
                        "send_resolved": True,
                        "http_config": {
                            "authorization": {
                                "type": "Bearer",
                                "credentials_file": str(directory / "token"),
                            }
                        },
                    }
                ],
            }
        ],
    }
    (directory / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = Process(
        [
            binary,
            f"--config.file={directory / 'alertmanager.yml'}",
            f"--storage.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        directory / "alertmanager.log",
        f"http://127.0.0.1:{port}/-/ready",
    )
    return process, f"127.0.0.1:{port}"


def start_prometheus(
    directory: Path, *, targets: list[str], rules: dict[str, Any], alertmanager: str
) -> tuple[Process, str]:
    binary = require_binary("prometheus", "prometheus")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "rules.yml").write_text(yaml.safe_dump(rules))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(directory / "rules.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [{"job_name": "test", "static_configs": [{"targets": targets}]}],
    }
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = Process(
        [
            binary,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        directory / "prometheus.log",
        f"http://127.0.0.1:{port}/-/ready",
    )
    return process, f"127.0.0.1:{port}"


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    created = Exporter()
    yield created
    created.close()


REMEDIATE = str(Path(sys.executable).parent / "remediate")


def start_serve(
    config: Path, port: int, log: Path, *, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`remediate -c CONFIG serve --port PORT` as a real process, once /health answers."""
    with log.open("a") as output:
        process = subprocess.Popen(
            [REMEDIATE, "-c", str(config), "serve", "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env if env is not None else dict(os.environ),
        )
    for _ in range(300):  # bounded: about 15 s
        if process.poll() is not None:
            pytest.fail(f"serve exited {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    pytest.fail(f"serve did not start: {log.read_text()}")


def stop_serve(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM and wait, as systemd would."""
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
