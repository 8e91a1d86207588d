"""Hostile input against a running `remediate serve`, on SQLite and on PostgreSQL:
schemathesis over our OpenAPI document and hypothesis payloads. No 5xx, and nothing is
ever executed from malformed or unauthenticated input."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from remediate.webhook.openapi import document
from tests.fixtures_databases import new_postgres_database

TOKEN = "fuzz-token-0123456789"
REMEDIATE = str(Path(sys.executable).parent / "remediate")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """A real server whose every route's playbook would leave a marker if it ever ran,
    on each store (PostgreSQL's text cannot hold NUL, and its gate sends label values
    as statement parameters below psycopg: both must hold up here too)."""
    if request.param == "postgresql":
        with new_postgres_database() as url:
            yield from _serve(tmp_path_factory, f"url: '{url}'")
    else:
        yield from _serve(tmp_path_factory, "")


def _serve(tmp_path_factory: pytest.TempPathFactory, store: str) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("fuzz")
    markers = root / "markers"
    markers.mkdir()
    (root / "remediate.yml").write_text(
        f"""
state: {{directory: {root / "state"}{", " + store if store else ""}}}
playbooks:
  commands:
    - name: mark
      parameters: {{service: {{type: string, pattern: "^[a-z0-9-]+$", required: true}}}}
      steps: [{{name: mark, argv: ["touch", "{markers}/{{service}}"]}}]
routes:
  - {{alert: ContainerNotRunning, playbook: mark, confidence: 95,
      parameters: {{service: "{{{{.Labels.name}}}}"}}}}
"""
    )
    port = _free_port()
    env = dict(os.environ, REMEDIATE_WEBHOOK_TOKEN=TOKEN, XDG_STATE_HOME=str(root / "xdg"))
    log = root / "serve.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [REMEDIATE, "-c", str(root / "remediate.yml"), "serve", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    else:
        process.kill()
        pytest.fail(f"serve did not start: {log.read_text()}")
    if store:  # on PostgreSQL indeed: no SQLite file beside it
        assert not (root / "state" / "remediate.db").exists()
    yield {"base": base, "markers": markers, "log": log}
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


schema = schemathesis.openapi.from_dict(document())


@pytest.mark.integration
@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_schemathesis_finds_no_server_error(case: Any, server: dict[str, Any]) -> None:
    for headers in ({"Authorization": f"Bearer {TOKEN}"}, {}, {"Authorization": "Bearer nope"}):
        response = case.call(base_url=server["base"], headers=headers)
        assert response.status_code < 500, response.text
        if (
            not headers.get("Authorization", "").endswith(TOKEN)
            and case.path != "/health"
            and (case.path != "/metrics")
        ):
            assert response.status_code in (401, 405)  # 405: a method no route has
    for marker in server["markers"].iterdir():  # nothing ran but what the pattern admits
        assert re.fullmatch(r"[a-z0-9-]+", marker.name)


CORPUS = [
    "web; rm -rf /",
    "../../etc/passwd",
    "$(reboot)",
    "`id`",
    "a\nb",
    "web\n",  # what `^...$` lets through with re.match
    "a\x00b",
    "-rf",
    "web && curl x",
    "\uff57\uff45\uff42",
    "web\u202e",
    "x" * 5000,
    "web|sh",
    "web'\"",
]
label_values = st.one_of(st.text(max_size=300), st.sampled_from(CORPUS))


def _each_of_the_corpus(test: Any) -> Any:
    """Every corpus value is tried, whatever hypothesis draws besides."""
    for value in CORPUS:
        test = example(name=value, extra={})(test)
    return test


@pytest.mark.integration
@given(
    name=label_values, extra=st.dictionaries(st.text(max_size=20), st.text(max_size=50), max_size=5)
)
@_each_of_the_corpus
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_hostile_labels_are_refused_and_never_executed(
    server: dict[str, Any], name: str, extra: dict[str, str]
) -> None:
    labels = {
        **extra,
        "alertname": "ContainerNotRunning",
        "name": name,
        "instance": str(time.monotonic_ns()),
    }
    body = {"alerts": [{"status": "firing", "labels": labels}]}
    response = httpx.post(
        f"{server['base']}/webhook?wait=5",
        json=body,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    if result["action"] == "executed":
        # Only a value the parameter pattern admits may run, and it is one argv element.
        assert re.fullmatch(r"[a-z0-9-]+", name)
    else:
        assert result["action"] in ("blocked", "escalate")
        assert result["reason"]
        # The refusal is in the store as answered: its check and its reason.
        stored = httpx.get(
            f"{server['base']}/decisions/{result['decision_id']}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        ).json()
        assert stored["action"] == {"blocked": "block", "escalate": "escalate"}[result["action"]]
        # (PostgreSQL's text holds U+FFFD where a reason quoting the value held NUL.)
        assert stored["reason"] in (result["reason"], result["reason"].replace("\x00", "\ufffd"))
        assert stored["check_name"]
        assert stored["execution_id"] is None
    for marker in server["markers"].iterdir():
        assert re.fullmatch(r"[a-z0-9-]+", marker.name)


@pytest.mark.integration
def test_the_token_never_appears_in_the_log(server: dict[str, Any]) -> None:
    httpx.post(f"{server['base']}/webhook?token={TOKEN}", json={"alerts": []}, timeout=10)
    httpx.post(f"{server['base']}/webhook?token=wrong-{TOKEN}", json={"alerts": []}, timeout=10)
    time.sleep(0.2)
    assert TOKEN not in server["log"].read_text()


@pytest.mark.integration
def test_random_bytes_get_400_not_500(server: dict[str, Any]) -> None:
    for body in (
        b"\xff\xfe",
        b"[]",
        b"null",
        b'{"alerts": "x"}',
        b'{"alerts": [null]}',
        json.dumps({"alerts": [{"status": "firing", "labels": []}]}).encode(),
    ):
        response = httpx.post(
            f"{server['base']}/webhook",
            content=body,
            headers={"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
            timeout=10,
        )
        assert response.status_code == 400, (body, response.text)
