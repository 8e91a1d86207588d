"""Escalations notify the operator through apprise: a real apprise delivery to a local
HTTP endpoint (the json:// service), no chat service needed."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from remediate.clock import ManualClock
from remediate.pipeline.request import Alert, Request
from remediate.runtime import Runtime
from remediate.system.notify import Notifier
from tests.helpers import settings_for


@pytest.fixture
def inbox() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"json://127.0.0.1:{server.server_port}/", received
    server.shutdown()
    server.server_close()


def test_an_escalation_sends_the_decision_id_and_how_to_approve(
    tmp_path: Path, clock: ManualClock, inbox: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = inbox
    settings = settings_for(
        tmp_path,
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        notifications={"urls": [url]},
        playbooks={"commands": [{"name": "ok", "steps": [{"name": "x", "argv": ["true"]}]}]},
    )
    runtime = Runtime.build(settings, clock=clock)
    runtime.pipeline.notify = Notifier(settings.notifications.urls, background=False)
    decision = runtime.pipeline.decide(
        Request("ok", source="webhook", confidence=80, alert=Alert("DiskWarning"))
    )
    runtime.close()
    assert decision.action == "escalate"
    [message] = received
    assert "approval needed for ok" in message["title"]
    assert f"Decision {decision.id}, approval {decision.approval_id}" in message["message"]
    assert f"remediate approve {decision.approval_id}" in message["message"]


def test_a_failing_notifier_never_breaks_a_decision(tmp_path: Path, clock: ManualClock) -> None:
    def broken(urls: Any, title: str, body: str) -> bool:
        raise ConnectionError("chat service down")

    settings = settings_for(
        tmp_path,
        f"sqlite:///{tmp_path / 'db.sqlite'}",
        notifications={"urls": ["json://127.0.0.1:9/"]},
        playbooks={"commands": [{"name": "ok", "steps": [{"name": "x", "argv": ["true"]}]}]},
    )
    runtime = Runtime.build(settings, clock=clock)
    runtime.pipeline.notify = Notifier(settings.notifications.urls, sender=broken, background=False)
    decision = runtime.pipeline.decide(Request("ok", source="webhook", confidence=10))
    runtime.close()
    assert decision.action == "escalate"
