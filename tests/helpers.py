"""Helpers for tests: skipping (or failing, in CI) when a real program is absent; settings."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from remediate.config.models import Settings

REQUIRE_INTEGRATION = os.environ.get("REMEDIATE_REQUIRE_INTEGRATION") == "1"
POSTGRES_ADMIN_URL = os.environ.get(
    "REMEDIATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def unavailable(reason: str) -> None:
    """Skip, or fail when integration tests are required."""
    if REQUIRE_INTEGRATION:
        pytest.fail(f"{reason} (REMEDIATE_REQUIRE_INTEGRATION=1)")
    pytest.skip(reason)


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} not found: apt-get install {package}")
    assert path is not None
    return path


def settings_for(tmp_path: Path, store_url: str, **sections: object) -> Settings:
    data: dict[str, object] = {
        "state": {"directory": str(tmp_path / "state"), "url": store_url},
    }
    data.update(sections)
    return Settings.model_validate(data)
