"""The directors' report in a real browser: headless Chromium opens the page offline, lays
out every chart, prints it to A4 PDF, and says nothing on its console.

Needs Debian's `chromium` (/usr/bin/chromium; .ci/run installs it). Without it the tests
are skipped, except under CI (the CI variable set), where they fail: a report nobody
checked in a browser must not pass CI silently.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from envol_outcomes.report import render_html

FIXTURE = Path(__file__).parents[1] / "unit" / "data" / "outcomes_report.json"
CHARTS = 12  # as in tests/unit/test_report.py
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", "--window-size=1280,4000"]
# The page's own colours (charts.py): participants, comparison, completed/share.
CHART_COLOURS = [(0x1F, 0x5F, 0xA8), (0xD9, 0x82, 0x2B), (0x2E, 0x8B, 0x57)]


@pytest.fixture(scope="module")
def chromium() -> str:
    # ENVOL_CHROMIUM: another browser binary (or a missing one, to see the skip/fail below).
    found = os.environ.get("ENVOL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).is_file():
        message = ("headless Chromium is needed to check the report in a browser: "
                   "apt-get install -y chromium (Debian's package, /usr/bin/chromium)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def browse(chromium: str, page: Path, profile: Path, *action: str) -> subprocess.CompletedProcess[str]:
    """One headless run on a file:// page, with its own profile (nothing shared between runs)."""
    result = subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", *action, page.as_uri()],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def console(result: subprocess.CompletedProcess[str]) -> list[str]:
    # Chromium logs every console message of the page as "...:INFO:CONSOLE:<line>] "<text>"",
    # console.error and uncaught exceptions included (their level is not in the line), and a
    # blocked load (Content-Security-Policy) too: the report must print none at all.
    return [line for line in result.stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory, chromium: str) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("report")
    answer = json.loads(FIXTURE.read_text())
    written = {}
    for lang in ("fr", "en"):
        written[lang] = folder / f"envol-pegase-2024-01-01-{lang}.html"
        written[lang].write_text(render_html(answer, lang), encoding="utf-8")
    return written


def test_the_console_check_catches_a_page_error(chromium: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><title>x</title><p>x</p>"
                      "<script>console.error('boom'); undefinedFunction();</script>")
    said = console(browse(chromium, broken, tmp_path / "profile", "--dump-dom"))
    assert any("boom" in line for line in said), said
    assert any("Uncaught" in line for line in said), said


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_every_chart_is_laid_out_and_the_console_stays_silent(chromium: str, pages: dict[str, Path],
                                                              tmp_path: Path, lang: str) -> None:
    result = browse(chromium, pages[lang], tmp_path / "profile", "--dump-dom")
    assert console(result) == []
    dom = result.stdout
    assert f'data-charts-expected="{CHARTS}"' in dom
    # Written by the page's script once the browser has laid out the charts (non-zero size).
    assert f'data-charts-rendered="{CHARTS}"' in dom, re.findall(r"data-charts-\w+=\"\d+\"", dom)


def png_rows(path: Path) -> tuple[int, int, int, list[bytes]]:
    """Width, height, bytes per pixel and the unfiltered rows of an 8-bit RGB(A) PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, compressed, header = 8, bytearray(), b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        kind, body = data[position + 4:position + 8], data[position + 8:position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            compressed += body
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    step = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(bytes(compressed)), width * step
    rows: list[bytes] = []
    previous = bytes(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if kind == 2:  # Up, the usual one: bytewise addition without carries, on big integers
            a, b = int.from_bytes(line, "big"), int.from_bytes(previous, "big")
            low = int.from_bytes(b"\x7f" * stride, "big")
            line = bytearray(((((a & low) + (b & low)) ^ ((a ^ b) & ~low)) & ((1 << 8 * stride) - 1))
                             .to_bytes(stride, "big"))
        elif kind in (1, 3, 4):  # Sub, Average, Paeth: byte by byte
            for i in range(stride):
                left = line[i - step] if i >= step else 0
                up, corner = previous[i], previous[i - step] if i >= step else 0
                if kind == 1:
                    guess = left
                elif kind == 3:
                    guess = (left + up) // 2
                else:
                    p = left + up - corner
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                    guess = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + guess) & 0xFF
        else:
            assert kind == 0, f"unknown PNG filter {kind}"
        rows.append(bytes(line))
        previous = rows[-1]
    return width, height, step, rows


def test_the_screenshot_shows_the_charts(chromium: str, pages: dict[str, Path], tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    result = browse(chromium, pages["fr"], tmp_path / "profile", f"--screenshot={shot}")
    assert console(result) == []
    width, height, step, rows = png_rows(shot)
    assert (width, height) == (1280, 4000)
    colours: set[bytes] = set()
    inked = 0
    for row in rows[::4]:  # every 4th row is plenty to tell a page from a blank one
        pixels = [row[i:i + 3] for i in range(0, len(row), step)]
        colours.update(pixels)
        inked += sum(pixel != b"\xff\xff\xff" for pixel in pixels)
    assert len(colours) > 50, f"only {len(colours)} colours: a blank page?"
    assert inked > 0.03 * width * len(rows[::4]), f"only {inked} non-white pixels sampled"
    for colour in CHART_COLOURS:  # the charts' own colours are on screen (bars, lines, markers)
        assert any(max(abs(p[0] - colour[0]), abs(p[1] - colour[1]), abs(p[2] - colour[2])) <= 3
                   for p in colours), f"no pixel of #{bytes(colour).hex()}"


def test_the_page_prints_to_a4(chromium: str, pages: dict[str, Path], tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    result = browse(chromium, pages["en"], tmp_path / "profile", f"--print-to-pdf={pdf}",
                    "--no-pdf-header-footer")
    assert console(result) == []
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and len(data) > 30_000, len(data)
    pages_found = re.findall(rb"/Type\s*/Page\b(?!s)", data)
    assert len(pages_found) >= 3, f"{len(pages_found)} pages"
    boxes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", data)
    assert boxes and all(abs(float(w) - 595.3) < 2 and abs(float(h) - 841.9) < 2 for w, h in boxes), boxes
