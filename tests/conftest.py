"""Shared fixtures: a store on SQLite and on the real PostgreSQL server, a manual clock.

Integration tests that need a program or server that is absent skip with a
reason naming the package, unless REMEDIATE_REQUIRE_INTEGRATION=1 (set by
.ci/run), where a missing one fails the run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from remediate.clock import ManualClock
from remediate.store import Store
from tests.helpers import POSTGRES_ADMIN_URL, unavailable

# Fixture modules shared by several test files.
pytest_plugins = [
    "tests.fixtures_monitoring",
    "tests.fixtures_databases",
    "tests.fixtures_podman",
]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on the PostgreSQL server, dropped at the end of the session."""
    import sqlalchemy as sa

    admin_url = POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    name = f"remediate_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = sa.create_engine(
            admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
        )
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as error:
        unavailable(f"PostgreSQL at {POSTGRES_ADMIN_URL} unreachable: {error.orig}")
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    yield url
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _empty(store: Store) -> None:
    from remediate.store.tables import metadata

    with store.engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'remediate.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store.open(store_url)
    _empty(opened)
    yield opened
    opened.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'state' / 'remediate.db'}")
    yield opened
    opened.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock.at("2025-12-24T10:00:00Z")


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """XDG directories inside tmp_path, so nothing touches the real home."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.delenv("REMEDIATE_CONFIG", raising=False)
    return tmp_path / "xdg-state" / "remediate"
