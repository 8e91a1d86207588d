"""The monthly HTML report rendered by a real headless Chromium: a non-blank screenshot and the
seed's headings in the DOM the browser built."""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from remediate.analytics.monthly import monthly, write
from remediate.analytics.synthetic import fill
from remediate.analytics.window import Window
from remediate.config.models import Settings
from remediate.store import Store
from tests.helpers import require_binary

HEADINGS = ["Summary", "Charts", "Top Performers", "Incidents Prevented", "Recommendations"]


def chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def png_facts(data: bytes) -> tuple[int, int, int]:
    """Width, height and how many distinct byte values the image data holds.

    A PNG of one colour decompresses to a handful of distinct bytes whatever the row filters
    (the colour's channels, zeros and the filter-type bytes); text and charts give hundreds.
    """
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, width, height, compressed = 8, 0, 0, b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            compressed += body
        position += 12 + length
    return width, height, len(set(zlib.decompress(compressed)))


@pytest.mark.integration
def test_the_monthly_html_renders_in_headless_chromium_with_its_headings(
    sqlite_store: Store, tmp_path: Path
) -> None:
    binary = require_binary("chromium", "chromium")
    fill(sqlite_store, "2025-12", executions=300, seed=4)
    _markdown, html = write(monthly(sqlite_store, Settings(), Window.month("2025-12")), tmp_path)

    screenshot = tmp_path / "report.png"
    shot = chromium(
        binary,
        tmp_path / "profile-shot",
        f"--screenshot={screenshot}",
        "--window-size=1200,1600",
        html.as_uri(),
    )
    assert shot.returncode == 0, shot.stderr
    width, height, distinct = png_facts(screenshot.read_bytes())
    assert (width, height) == (1200, 1600)
    assert distinct > 64, "the screenshot is (nearly) a single colour"

    dom = chromium(binary, tmp_path / "profile-dom", "--dump-dom", html.as_uri())
    assert dom.returncode == 0, dom.stderr
    assert "<h1>Remediation Report - December 2025</h1>" in dom.stdout
    positions = [dom.stdout.index(f"<h2>{heading}</h2>") for heading in HEADINGS]
    assert positions == sorted(positions)
    assert dom.stdout.count("<svg") == 3


def test_the_png_check_tells_a_blank_image_from_a_drawn_one() -> None:
    def png(rows: list[bytes], width: int) -> bytes:
        def chunk(kind: bytes, body: bytes) -> bytes:
            return (
                struct.pack(">I", len(body))
                + kind
                + body
                + struct.pack(">I", zlib.crc32(kind + body))
            )

        header = struct.pack(">IIBBBBB", width, len(rows), 8, 2, 0, 0, 0)
        raw = b"".join(b"\x00" + row for row in rows)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b"")
        )

    blank = png([b"\xff\xff\xff" * 50] * 20, 50)
    drawn = png([bytes((x * 7 + y * 13) % 256 for x in range(150)) for y in range(20)], 50)
    assert png_facts(blank) == (50, 20, 2)
    assert png_facts(drawn)[2] > 64
