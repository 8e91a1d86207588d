"""Slow and large clients: a body over the limit gets 413 at once, declared or chunked;
clients sending one byte a second are cut off by a timeout without stalling others."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.fixtures_monitoring import free_port, start_serve, stop_serve


@pytest.mark.integration
def test_a_trickling_client_is_cut_off_while_others_are_served(tmp_path: Path) -> None:
    config = tmp_path / "remediate.yml"
    config.write_text(
        f"state: {{directory: {tmp_path / 'state'}}}\nserver: {{body_timeout_seconds: 2}}\n"
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = start_serve(config, port, tmp_path / "serve.log")
    try:
        answers: list[tuple[float, bytes]] = []
        trickling = threading.Barrier(4)  # three slow clients and the test

        def trickle() -> None:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(
                    b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 1000\r\n\r\n"
                )
                sock.sendall(b"{")
                trickling.wait(10)
                for byte in b'"alerts": [' * 10:  # one byte a second, at most 110 s
                    ready, _, _ = select.select([sock], [], [], 1.0)
                    if ready:
                        answers.append((time.monotonic(), sock.recv(4096)))
                        break
                    try:
                        sock.sendall(bytes([byte]))
                    except OSError:
                        break  # the server closed on us: that is the point

        slow = [threading.Thread(target=trickle) for _ in range(3)]
        for thread in slow:
            thread.start()
        trickling.wait(10)  # all three are mid-body
        # Meanwhile others are answered, each with its decision: all of them before the
        # slow ones are cut off (a server stalled on those would answer after).
        served = []
        for n in range(20):
            alert = {"status": "firing", "labels": {"alertname": "Other", "instance": f"h{n}"}}
            response = httpx.post(f"{base}/webhook", json={"alerts": [alert]}, timeout=10)
            served.append((response.status_code, len(response.json()["results"])))
        others_done = time.monotonic()
        for thread in slow:
            thread.join(timeout=60)
        assert served == [(200, 1)] * 20
        assert len(answers) == 3
        assert all(text.startswith(b"HTTP/1.1 408") for _, text in answers), answers
        assert others_done < min(at for at, _ in answers)
        big = httpx.post(
            f"{base}/webhook",
            content=b"x" * (2 * 1024 * 1024),
            headers={"content-type": "application/json"},
            timeout=10,
        )
        assert big.status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts what arrives
            for _ in range(40):
                yield b"x" * 65536

        chunked = httpx.post(
            f"{base}/webhook",
            content=chunks(),
            headers={"content-type": "application/json"},
            timeout=10,
        )
        assert chunked.status_code == 413
    finally:
        stop_serve(serve)
