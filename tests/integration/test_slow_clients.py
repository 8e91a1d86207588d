"""Slow and large clients: a body over the limit gets 413 at once, declared or chunked;
clients sending one byte a second are cut off by a timeout without stalling others."""

from __future__ import annotations

import re
import select
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.fixtures_monitoring import free_port, start_serve, stop_serve


def _serve(tmp_path: Path, server: str) -> tuple[subprocess.Popen[bytes], int, str]:
    """A real `remediate serve` with these `server:` settings: process, port, base URL."""
    config = tmp_path / "remediate.yml"
    config.write_text(f"state: {{directory: {tmp_path / 'state'}}}\nserver: {{{server}}}\n")
    port = free_port()
    return start_serve(config, port, tmp_path / "serve.log"), port, f"http://127.0.0.1:{port}"


@pytest.mark.integration
def test_a_trickling_client_is_cut_off_while_others_are_served(tmp_path: Path) -> None:
    serve, port, base = _serve(tmp_path, "body_timeout_seconds: 2")
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
                        data = sock.recv(4096)
                        answers.append((time.monotonic(), data))
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
        with httpx.Client(timeout=10) as client:  # one connection, as Alertmanager keeps
            for n in range(20):
                labels = {"alertname": "Other", "instance": f"h{n}"}
                response = client.post(
                    f"{base}/webhook", json={"alerts": [{"status": "firing", "labels": labels}]}
                )
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


@pytest.mark.integration
def test_a_slow_request_head_or_a_silent_connection_is_cut_off(tmp_path: Path) -> None:
    """Cut off, without holding up others: a client sending its request line and headers
    a byte a second (408), one that connects and sends nothing, one that sends a blank
    line after a request and nothing more (both closed), and one whose second request's
    head trickles in on a kept-alive connection (408)."""
    serve, port, base = _serve(tmp_path, "header_timeout_seconds: 2")
    head = b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" * 3
    request = (
        b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 14\r\n\r\n{"alerts": []}'
    )
    ended: dict[str, tuple[float, bytes]] = {}
    started = threading.Barrier(5)

    def answered(sock: socket.socket) -> None:
        """Send one whole request and read its whole answer: the connection is kept alive."""
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(4096)
        status_and_headers, _, body = data.partition(b"\r\n\r\n")
        assert status_and_headers.startswith(b"HTTP/1.1 200"), data
        length = int(re.search(rb"content-length: (\d+)", status_and_headers).group(1))  # type: ignore[union-attr]
        while len(body) < length:
            body += sock.recv(4096)

    def trickle(name: str, first: bool) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            if not first:
                answered(sock)
            sock.sendall(head[:1])
            started.wait(10)
            for byte in head[1:]:  # one byte a second, at most about 150 s
                ready, _, _ = select.select([sock], [], [], 1.0)
                if ready:
                    data = sock.recv(4096)
                    ended[name] = (time.monotonic(), data)
                    return
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    ended[name] = (time.monotonic(), b"")
                    return

    def silent(name: str, blank_line: bool) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            if blank_line:
                answered(sock)
                sock.sendall(b"\r\n")
            started.wait(10)
            data = sock.recv(4096)  # b"": closed on us
            ended[name] = (time.monotonic(), data)

    threads = [
        threading.Thread(target=trickle, args=("trickle", True)),
        threading.Thread(target=trickle, args=("second request", False)),
        threading.Thread(target=silent, args=("silent", False)),
        threading.Thread(target=silent, args=("blank line", True)),
    ]
    try:
        for thread in threads:
            thread.start()
        started.wait(10)
        with httpx.Client(timeout=10) as client:
            served = [
                client.post(f"{base}/webhook", json={"alerts": []}).status_code for _ in range(20)
            ]
        others_done = time.monotonic()
        for thread in threads:
            thread.join(timeout=60)
        # The server goes on after cutting them off.
        after = httpx.post(f"{base}/webhook", json={"alerts": []}, timeout=10).status_code
    finally:
        stop_serve(serve)
    assert served == [200] * 20 and after == 200
    assert set(ended) == {"trickle", "second request", "silent", "blank line"}
    for name in ("trickle", "second request"):
        assert ended[name][1].startswith(b"HTTP/1.1 408"), ended
        assert b"request head not received within 2 s" in ended[name][1]
    assert ended["silent"][1] == ended["blank line"][1] == b""
    assert others_done < min(at for at, _ in ended.values())
