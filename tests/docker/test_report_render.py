"""The HTML report as a browser shows it: headless Chromium renders the report of a healthy run
and of a failing one (``--files-only`` against a seed-style directory and a broken copy: no
Docker engine needed), and the verdict and the hop diagram are the first screen (1280x900);
clicking a hop filters the results table; the report is one file.

Screenshots: ``reports/screenshots/healthy.png`` and ``failing.png`` (git-ignored); with
``REPORT_SCREENSHOTS_TO_DOCS=1`` also ``docs/report-healthy.png`` and ``docs/report-failing.png``
(the copies kept in git for the README)."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from html import unescape
from pathlib import Path

import pytest

from dtr_cache_check.testkit.local import REPO_ROOT

pytestmark = [pytest.mark.docker, pytest.mark.slow]

WIDTH, HEIGHT = 1280, 900
SHOTS = REPO_ROOT / "reports" / "screenshots"
DOCS = REPO_ROOT / "docs"
# Verdict colours (harness.report._COLOURS): what the verdict's border is drawn in.
GREEN, RED = (0x1A, 0x7F, 0x37), (0xCF, 0x22, 0x2E)
KINDS = {
    # kind: (broken, expected word, exit code, the verdict's colour, docs name)
    "healthy": (False, "FILES VALID", 0, GREEN, "report-healthy.png"),
    "failing": (True, "NOT READY", 1, RED, "report-failing.png"),
}

# Runs in the page after pytest-html drew its table: where the verdict and the diagram are in
# the first screen, the sort pytest-html applied, and what a click on a hop shows.
PROBE = """<script>
window.addEventListener('load', async function () {
  var pause = function () { return new Promise(function (r) { setTimeout(r, 100); }); };
  await pause();
  var out = {url: window.location.href};
  var box = function (id) {
    var r = document.getElementById(id).getBoundingClientRect();
    return {top: r.top, bottom: r.bottom, left: r.left, right: r.right};
  };
  out.verdict = box('dtr-verdict');
  out.diagram = box('dtr-diagram');
  var groups = function () {
    return Array.prototype.filter.call(
      document.querySelectorAll('#results-table tbody.results-table-row'),
      function (row) { return row.offsetParent !== null; }
    ).map(function (row) { return row.querySelector('td.col-hop').getAttribute('data-group'); });
  };
  out.before = groups();
  var hop = document.querySelector('#dtr-diagram .dtr-group[data-group="config-yml"]');
  hop.querySelector('text').dispatchEvent(new MouseEvent('click', {bubbles: true}));
  await pause();
  out.filtered = groups();
  out.note = document.getElementById('dtr-filter-note').textContent;
  document.querySelector('th[data-column-type="duration"]').click();
  await pause();
  out.resorted = groups();
  hop.dispatchEvent(new MouseEvent('click', {bubbles: true}));
  await pause();
  out.cleared = groups();
  document.body.setAttribute('data-probe', JSON.stringify(out));
});
</script>"""


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("no chromium: bash .ci/setup.sh installs Debian's chromium package")
    return path


def write_deploy_dir(directory: Path, broken: bool) -> None:
    """A seed-style deployment directory; broken: blobttl without storage.delete.enabled and
    the cache's certificate without its intermediate (two root causes)."""
    from dtr_cache_check.pki import write_seed_certs
    from dtr_cache_check.reference.seed_templates import cache_config, stack_file, write_yaml
    from dtr_cache_check.reference.stack.write_files import Pki

    pki = Pki.create()
    write_seed_certs(directory / "certs", pki.cache_leaf(["cache.example.com"]), pki.dtr_ca,
                     with_chain=not broken)
    write_yaml(directory / "config.yml", cache_config(
        upstreams=["https://dtr.example.invalid:443"], host="https://cache.example.com",
        secret="4f1d6c0e8a9b2d3c5e7f9a1b3c5d7e9f", delete_enabled=not broken))
    write_yaml(directory / "docker-stack.yml",
               stack_file(image="mirantis/dtr-content-cache:2.9.0", port=443))


def run_files_only(deploy: Path, out: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DTR_CHECK_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "checks/test_01_config.py",
         "checks/test_02_certificate_files.py", "-q", "-p", "no:cacheprovider", "--files-only",
         "--dtr-url", "https://dtr.example.invalid", "--deploy-dir", str(deploy),
         "--html", str(out / "report.html"), "--junitxml", str(out / "junit.xml")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=clean)


def browse(chromium: str, page: Path, profile: Path, *mode: str) -> subprocess.CompletedProcess:
    argv = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}",
            *mode, page.as_uri()]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def read_png(path: Path) -> tuple[int, int, int, list[bytes]]:
    """(width, height, bytes per pixel, rows) of an 8-bit RGB/RGBA, non-interlaced PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    assert header is not None
    width, height, depth, colour, _compression, _filter, interlace = header
    assert depth == 8 and interlace == 0 and colour in (2, 6), header
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif kind == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def pixels(rows: list[bytes], bpp: int, top: float, bottom: float, left: float, right: float):
    for y in range(max(0, int(top)), min(len(rows), int(bottom))):
        row = rows[y]
        for x in range(max(0, int(left)), min(len(row) // bpp, int(right))):
            yield row[x * bpp], row[x * bpp + 1], row[x * bpp + 2]


def near(pixel: tuple[int, int, int], colour: tuple[int, int, int], slack: int = 40) -> bool:
    return all(abs(a - b) <= slack for a, b in zip(pixel, colour, strict=True))


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_verdict_and_the_diagram_are_the_first_screen(chromium, tmp_path, kind):
    broken, word, code, colour, docs_name = KINDS[kind]
    deploy, out = tmp_path / "deploy", tmp_path / "out"
    write_deploy_dir(deploy, broken)
    done = run_files_only(deploy, out)
    assert done.returncode == code, done.stdout[-3000:] + done.stderr[-2000:]
    report = out / "report.html"
    # One file: no assets/ beside a report written elsewhere than reports/.
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "report.html", "results.json"]

    # The screenshot of the first screen.
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / f"{kind}.png"
    shot.unlink(missing_ok=True)
    browse(chromium, report, tmp_path / "profile", f"--screenshot={shot}")
    width, height, bpp, rows = read_png(shot)
    assert (width, height) == (WIDTH, HEIGHT)
    if os.environ.get("REPORT_SCREENSHOTS_TO_DOCS") == "1":
        shutil.copyfile(shot, DOCS / docs_name)

    # The live DOM: the verdict and the SVG are there, moved above the environment table.
    dom = browse(chromium, report, tmp_path / "profile", "--virtual-time-budget=10000",
                 "--dump-dom").stdout
    assert re.search(rf'<div id="dtr-verdict" data-word="{word}"', dom), dom[:3000]
    assert '<svg id="dtr-diagram"' in dom and 'id="results-table"' in dom
    assert dom.index('id="dtr-top"') < dom.index('id="environment"') < dom.index(
        'id="results-table"')
    if broken:
        assert dom.count('class="dtr-root"') == 2 and "storage.delete.enabled" in dom

    # Where they are on the screen, and what a click on a hop does.
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    dom = browse(chromium, probe, tmp_path / "profile", "--virtual-time-budget=10000",
                 "--dump-dom").stdout
    found = re.search(r'data-probe="([^"]*)"', dom)
    assert found, dom[-3000:]
    seen = json.loads(unescape(found[1]))
    for element in ("verdict", "diagram"):
        box = seen[element]
        assert 0 <= box["top"] < box["bottom"] <= HEIGHT, (element, box)
        assert 0 <= box["left"] < box["right"] <= WIDTH, (element, box)
    assert "sort=hop" in seen["url"]   # the table is grouped by hop by default
    assert len(seen["before"]) == 17 and seen["before"][0] == "config-yml"
    assert seen["before"] == sorted(seen["before"], key=["config-yml", "docker-stack-yml",
                                                         "deployment-files"].index)
    assert seen["filtered"] == ["config-yml"] * seen["before"].count("config-yml")
    assert seen["note"].startswith(f"Showing the {len(seen['filtered'])} check(s) of config.yml")
    assert seen["resorted"] == seen["filtered"]   # the filter survives pytest-html's redraw
    assert sorted(seen["cleared"]) == sorted(seen["before"])

    # The pixels: the top of the first screen is not blank, and the verdict's box is drawn in
    # the verdict's colour.
    inked = sum(1 for p in pixels(rows, bpp, 0, HEIGHT, 0, WIDTH) if min(p) < 235)
    assert inked > WIDTH * HEIGHT * 0.03, inked
    box = seen["verdict"]
    coloured = sum(1 for p in pixels(rows, bpp, box["top"], box["bottom"], box["left"],
                                     box["right"]) if near(p, colour))
    assert coloured > 1500, coloured
    diagram_box = seen["diagram"]
    drawn = sum(1 for p in pixels(rows, bpp, diagram_box["top"], diagram_box["bottom"],
                                  diagram_box["left"], diagram_box["right"]) if min(p) < 235)
    assert drawn > 10000, drawn
