"""``fusekit eval --report report.html``: content of the self-contained HTML report, and a real browser."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
import types
from pathlib import Path

import numpy as np
import pytest

import fusekit
from fusekit import Fuser, hookimpl
from fusekit.evaluation import evaluate
from fusekit.evaluation.html_report import bar_chart_svg, pick_scenes, render_html
from fusekit.io import write_image
from fusekit.plugins import build_host

METRICS = "en,mi,ssim,qabf,nabf"


def _make_dataset(root: Path, scenes: int = 4) -> Path:
    """A small infrared/visible dataset (colour visible images) drawn with numpy."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:48, 0:64] / 64.0
    for k in range(scenes):
        ir = np.clip(0.2 + 0.7 * np.exp(-((xx - 0.2 - 0.15 * k) ** 2 + (yy - 0.35) ** 2) / 0.01)
                     + 0.03 * rng.standard_normal(xx.shape), 0, 1)
        vi = np.clip(0.5 + 0.3 * np.sin(14 * xx + k) * np.cos(11 * yy), 0, 1)
        write_image(root / "ir" / f"scene{k}.png", ir)
        write_image(root / "vi" / f"scene{k}.png", np.stack([vi, 0.9 * vi, 0.6 * vi], axis=-1))
    return root


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    return _make_dataset(tmp_path / "ivif")


@pytest.fixture()
def fused_folder(dataset: Path, tmp_path: Path) -> Path:
    """Another tool's output under an awkward name, with one scene missing."""
    from fusekit.io import read_image

    folder = tmp_path / "a<b>&c"
    for k in (0, 1, 2):  # scene3 missing: a failure, the others still scored
        ir, vi = read_image(dataset / "ir" / f"scene{k}.png"), read_image(dataset / "vi" / f"scene{k}.png")
        write_image(folder / f"scene{k}.png", np.maximum(ir, vi.mean(axis=2)))
    return folder


def _host_with_carded_method():
    """A host with a method that ships weights cards (``weight_variants``)."""
    class Carded(Fuser):
        name = "carded"
        tasks = ("ivif",)
        summary = "mean of the sources, with a weights card"

        @classmethod
        def weight_variants(cls):
            return [{"task": "ivif", "variant": "fixed", "steps": "1500", "card": "trained on TNO"},
                    {"task": "ivif", "variant": "learned", "steps": "3000", "card": "<meta-learned>"}]

        def fuse(self, sources):
            return np.mean(np.stack(sources), axis=0).astype(np.float32)

    @hookimpl
    def register_fusers(register):
        register(Carded)

    plugin = types.SimpleNamespace(register_fusers=register_fusers, __name__="carded_plugin")
    return build_host(entry_points=False, extra=[(plugin, "carded-plugin")])


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


def test_report_content(dataset: Path, fused_folder: Path, tmp_path: Path):
    from PIL import Image

    host = _host_with_carded_method()
    report = evaluate(dataset, fused=[fused_folder], methods=["max", "carded"], metrics=METRICS,
                      cache_dir=tmp_path / "cache", host=host)
    html = render_html(report, max_scenes=3)

    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    # self-contained: no scripts, links, style sheets or images from anywhere else
    assert "<script" not in html and "<link" not in html and "url(" not in html
    assert re.findall(r'(?:src|href)="(?!data:image/png;base64,)', html) == []
    assert "http://" not in html and "https://" not in html

    # summary: mean ± std, arrows and units, the best mean of each metric in bold
    summary = html[html.index('<table id="summary">'):]
    summary = summary[:summary.index("</table>")]
    assert "MI \u2191 (bits)" in summary and "Nabf \u2193" in summary and "\u00b1" in summary
    labels = ["a&lt;b&gt;&amp;c", "max", "carded"]
    assert [re.search(f'<th class="l">{re.escape(lab)}</th>', summary) is not None for lab in labels] == [True] * 3
    best = report.best()
    stats = report.summary()
    assert summary.count("<strong>") == sum(len(v) for v in best.values()) > 0
    for metric, methods in best.items():
        for method in methods:
            st = stats[method][metric]
            assert re.search(rf"<strong>{st.mean:.{2 if abs(st.mean) >= 100 else 3 if abs(st.mean) >= 1 else 4}f}",
                             summary)

    # a chart per metric, with error bars and a dot per image
    assert html.count("<svg") == len(METRICS.split(","))
    assert html.count("<circle") == sum(len(report.values(m, k)) for m in report.methods
                                        for k in METRICS.split(","))

    # contact sheets: 3 of 4 scenes, each a PNG with sources and methods labelled on it
    assert "3 of 4 scenes" in html
    sheets = _images(html)
    assert len(sheets) == 3
    for png in sheets:
        image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        assert image.shape[0] > 200 and image.shape[1] > 5 * 120   # two rows, five pictures
        assert (image[3, 3] == 0).all()                            # the label box of the first picture
        assert ((image == [255, 221, 0]).all(axis=2)).any()        # the detail marker
    assert re.search(r"scene <code>scene0</code>: ir, vi, a&lt;b&gt;&amp;c, max, carded", html)
    assert 'id="scene-scene3"' in html and 'id="scene-scene1"' not in html  # first, middle, last

    # per-image table, failures, metadata with the conventions and the weights card
    assert html.count('<td class="l">scene') == len(report.rows)
    assert "no fused image named &#x27;scene3&#x27;" in html and "1 failure; " in html and "(s)" not in html
    assert "<b>" not in html.replace("<body>", "")
    assert fusekit.__version__ in html and "profile</th><td class=\"l\">standard:" in html
    conventions = html[html.index('<table id="conventions">'):]
    conventions = conventions[conventions.index("<tbody>"):conventions.index("</table>")]
    assert conventions.count("<tr><th") == len(METRICS.split(","))
    assert "log2 (bits)" in conventions and "11x11 Gaussian" in conventions
    assert "method <code>carded</code>" in html and "trained on TNO" in html
    assert "&lt;meta-learned&gt;" in html
    assert "fused images read from" in html


def test_report_without_sheets_and_vifb_profile(dataset: Path, tmp_path: Path):
    report = evaluate(dataset, methods=["average"], metrics="en,mi,rmse", profile="vifb",
                      cache_dir=tmp_path / "cache")
    html = render_html(report, max_scenes=0)
    assert _images(html) == [] and "sheets switched off (0 of 4 scenes)" in html
    assert "ln (nats)" in html and "VIFB metricsRmse.m" in html and "None: every image was scored" in html


def test_pick_scenes_spreads_over_the_sorted_names():
    names = [f"{k:03d}" for k in range(100)]
    assert pick_scenes(names, 5) == ["000", "025", "050", "074", "099"]
    assert pick_scenes(names[:3], 12) == names[:3]
    assert pick_scenes(names, 0) == []


def test_bar_chart_handles_negative_infinite_and_missing_values():
    svg = bar_chart_svg("SCD \u2191", ["a", "b", "c"],
                        [np.array([-0.5, 0.25, np.inf]), np.array([1.0, 1.5]), np.array([])], {"b"})
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "1 non-finite left out" in svg and "n/a" in svg
    assert svg.count("<circle") == 4 and "#2f5d8f" in svg       # the best bar is the dark one
    assert "no finite values" in bar_chart_svg("X", ["a"], [np.array([np.nan])])


def test_cli_report_is_written_with_failures(run_cli, dataset: Path, fused_folder: Path, tmp_path: Path):
    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()
    out.write_text("old")
    result = run_cli(["eval", dataset, "--fused", fused_folder, "-m", "average", "--metrics", "en,ssim",
                      "--cache", tmp_path / "cache", "--report", out, "--report-scenes", "2",
                      "--no-progress"])
    assert result.exit_code == 1, result.output            # scene3 has no fused image
    assert f"wrote {out}" in result.stderr
    html = out.read_text(encoding="utf-8")
    assert "2 of 4 scenes" in html and len(_images(html)) == 2 and "no fused image named" in html
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html"]   # no temporary left


def test_cli_refuses_unwritable_report_before_scoring(run_cli, dataset: Path, tmp_path: Path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    cache = tmp_path / "cache"
    result = run_cli(["eval", dataset, "-m", "average", "--cache", cache,
                      "--report", blocker / "report.html", "--no-progress"])
    assert result.exit_code == 2 and "--report" in result.stderr
    assert not cache.exists()                                # nothing was fused or scored
    result = run_cli(["eval", dataset, "-m", "average", "--cache", cache, "-o", tmp_path / "r.html",
                      "-f", "markdown", "--report", tmp_path / "r.html"])
    assert result.exit_code == 2 and "same file" in result.stderr
    result = run_cli(["eval", dataset, "-m", "average", "--report", tmp_path])
    assert result.exit_code == 2


# -- in a real browser -------------------------------------------------------------------------

def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.mark.slow
def test_report_renders_in_headless_chromium(dataset: Path, fused_folder: Path, tmp_path: Path):
    from PIL import Image

    browser = _chromium()
    if browser is None:
        pytest.skip("headless Chromium not found: apt-get install -y chromium (Debian) to run this test")
    report = evaluate(dataset, fused=[fused_folder], methods=["max"], metrics=METRICS,
                      cache_dir=tmp_path / "cache")
    page = report.write_html(tmp_path / "report.html", max_scenes=2)
    shot = tmp_path / "shot.png"
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
              "--no-first-run", "--disable-extensions", f"--user-data-dir={tmp_path / 'profile'}"]
    url = page.resolve().as_uri()
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=1200,1600", url],
                   check=True, capture_output=True, timeout=240)
    dom = subprocess.run([*common, "--dump-dom", url], check=True, capture_output=True, timeout=240,
                         text=True).stdout

    # the browser parsed the summary table: a row per method, a cell per metric
    table = dom[dom.index('<table id="summary">'):]
    table = table[:table.index("</table>")]
    assert table.count("<tr>") == 1 + len(report.methods)
    assert table.count("<td") == len(report.methods) * len(METRICS.split(","))

    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert image.shape[0] >= 1000 and image.shape[1] >= 1000
    assert image.std() > 20                                             # not blank
    dark = (image.sum(axis=2) < 200).mean()
    assert 0.005 < dark < 0.9                                           # text and pictures, not a void
    header = np.abs(image - [240, 243, 247]).max(axis=2) <= 3           # the table header's background
    rows = np.nonzero(header.sum(axis=1) > 200)[0]
    assert rows.size and rows.min() < 400                               # the summary table near the top
    assert (np.abs(image - [255, 221, 0]).max(axis=2) <= 3).sum() > 50  # the sheets' detail markers


def test_weights_card_shows_the_task_of_the_run(dataset: Path, tmp_path: Path):
    report = evaluate(dataset, methods=["average"], metrics="en", cache_dir=tmp_path / "cache")
    report.method_info["average"] = {"kind": "method", "name": "net", "summary": "", "options": {"task": "ivif"},
                                     "weights": [{"task": "ivif", "variant": "fixed", "file": "net_ivif.st"},
                                                 {"task": "mif", "variant": "fixed", "file": "net_mif.st"}]}
    html = render_html(report, max_scenes=0)
    assert "net_ivif.st" in html and "net_mif.st" not in html
