"""Fixtures for database tests: a fresh PostgreSQL database, a throwaway redis-server, and a
listener that counts connection attempts (to prove a client does not retry).

Import the fixtures you use into the test module:
    from tests.fixtures_databases import postgres_database, redis_server  # noqa: F401
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import POSTGRES_ADMIN_URL, require_binary, unavailable

__all__ = [
    "Listener",
    "closed_port",
    "listener",
    "new_postgres_database",
    "postgres_database",
    "redis_server",
    "serve_store_url",
    "state_line",
]


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A uniquely named database on the PostgreSQL server (trust auth), dropped afterwards."""
    with new_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def serve_store_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """For tests of a real `remediate serve` on each store: None for the default SQLite
    file in the state directory, else a new PostgreSQL database's URL."""
    if request.param == "sqlite":
        yield None
    else:
        with new_postgres_database() as url:
            yield url


def state_line(directory: Path, url: str | None) -> str:
    """The config's `state:` line for a state directory and, if given, a store URL."""
    return f"state: {{directory: {directory}" + (f", url: '{url}'" if url else "") + "}"


@contextmanager
def new_postgres_database() -> Iterator[str]:
    """The URL of a new, uniquely named database, dropped when the block ends (for
    fixtures of any scope)."""
    import psycopg

    name = f"remediate_db_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        unavailable(f"PostgreSQL at {POSTGRES_ADMIN_URL} unreachable: {error}")
        raise  # unreachable: unavailable() skips or fails
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def closed_port() -> int:
    """A port nothing listens on (just released by the kernel): connecting is refused."""
    return free_port()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[str]:
    """A redis-server of our own on a free loopback port, no persistence; its URL."""
    import redis

    binary = require_binary("redis-server", "redis-server")
    port = free_port()
    directory = tmp_path / "redis"
    directory.mkdir()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
            "--logfile",
            str(directory / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    try:
        for _ in range(100):  # up to ~10 s for the server to accept connections
            if process.poll() is not None:
                pytest.fail(f"redis-server exited {process.returncode}: see {directory}")
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    break
            time.sleep(0.1)
        else:
            pytest.fail(f"redis-server on port {port} did not answer PING")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Listener:
    """A TCP listener that accepts connections, counts them and never answers."""

    port: int
    accepted: int = 0
    held: list[socket.socket] = field(default_factory=list)


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.1)
    state = Listener(server.getsockname()[1])
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            state.accepted += 1
            state.held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()
        for connection in state.held:
            connection.close()
