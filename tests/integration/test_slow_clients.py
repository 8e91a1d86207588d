"""Slow and large clients: a body over the limit gets 413 at once; a client sending one
byte a second is cut off by a timeout without stalling others."""

from __future__ import annotations

import select
import socket
import threading
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
        answer: list[bytes] = []

        def trickle() -> None:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(
                    b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 1000\r\n\r\n"
                )
                for byte in b'{"alerts": [' * 10:  # one byte a second, at most 120 s
                    try:
                        sock.sendall(bytes([byte]))
                    except OSError:
                        break  # the server closed on us: that is the point
                    ready, _, _ = select.select([sock], [], [], 1.0)
                    if ready:
                        answer.append(sock.recv(4096))
                        break

        slow = threading.Thread(target=trickle)
        slow.start()
        # Meanwhile others are answered normally.
        served = [
            httpx.post(f"{base}/webhook", json={"alerts": []}, timeout=10).status_code
            for _ in range(20)
        ]
        slow.join(timeout=60)
        assert served == [200] * 20
        assert answer and answer[0].startswith(b"HTTP/1.1 408")
        big = httpx.post(
            f"{base}/webhook",
            content=b"x" * (2 * 1024 * 1024),
            headers={"content-type": "application/json"},
            timeout=10,
        )
        assert big.status_code == 413
    finally:
        stop_serve(serve)
