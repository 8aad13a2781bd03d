"""The HTML report of an evaluation: one self-contained file people look at.

``fusekit eval ... --report report.html`` writes a single HTML file with no
external resources (no scripts, fonts, style sheets or image links; images
are inline base64 PNG, charts inline SVG), so it can be mailed, attached to
an issue or opened offline. It holds, in order:

1. the summary table: mean ± std per method and metric, the metric's
   direction (↑/↓) and unit, the best mean of each metric in bold;
2. one bar chart per metric: the mean of each method, ± one standard
   deviation as an error bar, and every image's value as a dot;
3. a contact sheet per scene (at most ``max_scenes`` of them, spread evenly
   over the sorted scene names, so a large dataset keeps the file small):
   the sources and every method's fused image, each labelled with its name
   on the picture, a rectangle marking a detail, and the detail enlarged in
   a second row;
4. the per-image table;
5. the failures;
6. the run's metadata: fusekit version, time, dataset, the profile with the
   conventions it uses for each scored metric
   (:mod:`fusekit.metrics.conventions`), and the methods with their options
   and weights cards (``Fuser.weight_variants()``).

Everything shown is escaped; the file is written atomically.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io as _io
import math
import os
import platform
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..text import count
from .report import _fmt, _fmt_stat

if TYPE_CHECKING:  # pragma: no cover
    from .report import EvaluationReport

#: Default number of scenes drawn as contact sheets.
DEFAULT_MAX_SCENES = 12

#: Height in pixels of each picture in a contact sheet.
TILE_HEIGHT = 200

#: Per-image dots drawn per method in a bar chart (evenly subsampled beyond this).
MAX_DOTS = 300

_BAR, _BAR_BEST, _DOT, _ERR = "#9fb8d6", "#2f5d8f", "#1b1b1b", "#b03a2e"

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px;color:#1b1b1b;
background:#fff;line-height:1.4}
h1{font-size:1.5em;margin:0 0 4px}h2{font-size:1.2em;margin:28px 0 8px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:8px 0;font-size:0.9em}
th,td{border:1px solid #d0d0d0;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#f0f3f7}td.l,th.l{text-align:left}
td.best{font-weight:bold;background:#eaf2e3}
.note{color:#555;font-size:0.9em}.charts{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0 0 16px}figcaption{font-size:0.9em;color:#333}
img.sheet{max-width:100%;height:auto;border:1px solid #ddd}
ul.fail li{font-family:ui-monospace,monospace;font-size:0.85em}
code{font-size:0.9em}
"""


def _e(text: Any) -> str:
    """``text`` escaped for HTML text and attribute values."""
    return html.escape(str(text), quote=True)


# -- charts ------------------------------------------------------------------------------------

def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering ``[lo, hi]``."""
    span = hi - lo
    if not (span > 0 and math.isfinite(span)):
        return [lo]
    raw = span / max(count - 1, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = first
    while t <= hi + step * 1e-9:
        ticks.append(0.0 if abs(t) < step * 1e-9 else t)
        t += step
    return ticks


def _tick_label(value: float) -> str:
    return f"{value:.4g}"


def bar_chart_svg(title: str, methods: Sequence[str], values: Sequence[np.ndarray],
                  best: set[str] | frozenset[str] = frozenset(), width: int = 360, height: int = 230) -> str:
    """One metric's chart: a bar per method at the mean, ± std error bar, a dot per image.

    Parameters
    ----------
    title : str
        Chart title (metric, arrow, unit).
    methods : sequence of str
        Method labels, one bar each.
    values : sequence of ndarray
        Per-image values of each method; non-finite ones are left out (and
        counted in the chart's note).
    best : set of str
        Methods whose bar is drawn in the darker colour.
    width, height : int
        Size of the SVG in pixels.

    Returns
    -------
    str
        An ``<svg>`` element (inline; no external references).
    """
    finite = [v[np.isfinite(v)] if v.size else v for v in values]
    dropped = sum(int(v.size - f.size) for v, f in zip(values, finite))
    pool = np.concatenate([f for f in finite if f.size] or [np.zeros(0)])
    left, right, top, bottom = 52, 10, 26, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [f'<svg width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}">',
             f'<rect width="{width}" height="{height}" fill="#fff"/>',
             f'<text x="{width / 2:.1f}" y="16" text-anchor="middle" font-size="13" '
             f'font-weight="bold">{_e(title)}</text>']
    if pool.size == 0:
        parts.append(f'<text x="{width / 2:.1f}" y="{height / 2:.1f}" text-anchor="middle" '
                     f'font-size="12" fill="#777">no finite values</text></svg>')
        return "".join(parts)
    stats = [(float(f.mean()), float(f.std())) if f.size else None for f in finite]
    extremes = [pool.min(), pool.max(), 0.0]
    extremes += [m - s for m, s in (st for st in stats if st)] + [m + s for m, s in (st for st in stats if st)]
    lo, hi = float(min(extremes)), float(max(extremes))
    if hi == lo:
        hi = lo + 1.0
    pad = (hi - lo) * 0.05
    lo, hi = (lo - pad if lo < 0 else lo), hi + pad

    def y(v: float) -> float:
        return top + plot_h * (hi - v) / (hi - lo)

    for t in _nice_ticks(lo, hi):
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
                     f'stroke="#e3e3e3"/>')
        parts.append(f'<text x="{left - 4}" y="{y(t) + 4:.1f}" text-anchor="end" font-size="10" '
                     f'fill="#444">{_e(_tick_label(t))}</text>')
    parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(0.0):.1f}" y2="{y(0.0):.1f}" '
                 f'stroke="#888"/>')
    slot = plot_w / max(len(methods), 1)
    bar_w = min(slot * 0.6, 60.0)
    for k, (method, f, st) in enumerate(zip(methods, finite, stats)):
        cx = left + slot * (k + 0.5)
        label = method if len(method) <= 14 else method[:13] + "\u2026"
        parts.append(f'<text x="{cx:.1f}" y="{top + plot_h + 14}" text-anchor="middle" font-size="10">'
                     f'<title>{_e(method)}</title>{_e(label)}</text>')
        if st is None:
            parts.append(f'<text x="{cx:.1f}" y="{y(0.0) - 4:.1f}" text-anchor="middle" font-size="10" '
                         f'fill="#777">n/a</text>')
            continue
        mean, std = st
        y0, y1 = sorted((y(0.0), y(mean)))
        colour = _BAR_BEST if method in best else _BAR
        parts.append(f'<rect x="{cx - bar_w / 2:.1f}" y="{y0:.1f}" width="{bar_w:.1f}" '
                     f'height="{max(y1 - y0, 0.5):.1f}" fill="{colour}"><title>{_e(method)}: mean '
                     f'{_e(_fmt(mean))}, std {_e(_fmt(std))}, {count(f.size, "image")}</title></rect>')
        dots = f if f.size <= MAX_DOTS else f[np.linspace(0, f.size - 1, MAX_DOTS).astype(int)]
        for j, v in enumerate(dots):
            jitter = ((j * 0.618034) % 1.0 - 0.5) * bar_w * 0.7
            parts.append(f'<circle cx="{cx + jitter:.1f}" cy="{y(float(v)):.1f}" r="1.8" fill="{_DOT}" '
                         f'fill-opacity="0.45"/>')
        cap = bar_w * 0.25
        ya, yb = y(mean - std), y(mean + std)
        parts.append(f'<path d="M{cx:.1f} {ya:.1f}V{yb:.1f}M{cx - cap:.1f} {ya:.1f}H{cx + cap:.1f}'
                     f'M{cx - cap:.1f} {yb:.1f}H{cx + cap:.1f}" stroke="{_ERR}" stroke-width="1.6" '
                     f'fill="none"/>')
    note = "bar: mean; red: \u00b1 1 std; dots: images"
    if dropped:
        note += f"; {dropped} non-finite left out"
    parts.append(f'<text x="{left}" y="{height - 8}" font-size="9.5" fill="#555">{_e(note)}</text>')
    parts.append("</svg>")
    return "".join(parts)


# -- contact sheets ----------------------------------------------------------------------------

def _to_uint8_rgb(image: np.ndarray) -> np.ndarray:
    """Float [0, 1] grey or RGB -> uint8 RGB."""
    arr = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return (arr * 255.0 + 0.5).astype(np.uint8)


def _detail_box(images: Sequence[np.ndarray]) -> tuple[int, int, int] | None:
    """``(row, col, size)`` of the square with the most edge energy in the mean of ``images``.

    The square is an eighth of the shorter side (at least 12 pixels), searched
    with half-square steps away from a margin of 1/25 of each side (dark
    frames and padding at image borders are edges nobody wants to look at),
    on the mean image smoothed with a Gaussian (sigma 1.5) so that sensor
    noise does not win over structure; ``None`` for images too small to zoom
    into.
    """
    from scipy import ndimage

    same = [i for i in images if i is not None and i.shape[:2] == images[0].shape[:2]]
    if not same:
        return None
    grey = np.mean([i.mean(axis=2) if i.ndim == 3 else i for i in same], axis=0).astype(np.float64)
    h, w = grey.shape
    size = max(min(h, w) // 8, 12)
    mr, mc = h // 25, w // 25
    if h - 2 * mr < size or w - 2 * mc < size:
        return None
    gy, gx = np.gradient(ndimage.gaussian_filter(grey, 1.5))
    energy = np.hypot(gx, gy)
    integral = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    step = max(size // 2, 1)
    best, where = -1.0, (mr, mc)
    for r in range(mr, h - mr - size + 1, step):
        for c in range(mc, w - mc - size + 1, step):
            total = (integral[r + size, c + size] - integral[r, c + size]
                     - integral[r + size, c] + integral[r, c])
            if total > best:
                best, where = total, (r, c)
    return where[0], where[1], size


def scene_sheet(names: Sequence[str], images: Sequence[np.ndarray | None], tile_height: int = TILE_HEIGHT,
                gap: int = 4) -> bytes:
    """A labelled contact sheet of one scene as PNG bytes.

    Parameters
    ----------
    names : sequence of str
        Label of each picture (source folder or method), drawn on it.
    images : sequence of ndarray or None
        Float [0, 1] grey or RGB, in the order of ``names``; ``None`` for a
        picture that could not be read (drawn as a grey "missing" tile).
    tile_height : int
        Height of each picture (lowered to the images' own height, but not
        below 120 pixels); widths keep the aspect ratio.
    gap : int
        White space between pictures.

    Returns
    -------
    bytes
        PNG. First row: the pictures, a yellow square marking the detail;
        second row: the detail of each picture enlarged (nearest neighbour,
        so pixels stay visible), labelled with the zoom factor.
    """
    from PIL import Image, ImageDraw

    from ..sheet import draw_label as _label, label_font as _font

    font = _font(max(11, tile_height // 14))
    present = [i for i in images if i is not None]
    ref = present[0] if present else None
    box = _detail_box(present) if present else None
    if ref is not None:  # small images are not blown up, very small ones only enough to read the labels
        tile_height = max(min(tile_height, ref.shape[0]), 120)
    aspect = ref.shape[1] / ref.shape[0] if ref is not None else 4 / 3
    tile_w = max(1, round(tile_height * aspect))
    rows = 2 if box is not None else 1
    sheet = Image.new("RGB", (len(names) * (tile_w + gap) - gap, rows * (tile_height + gap) - gap),
                      (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, (name, image) in enumerate(zip(names, images)):
        x = k * (tile_w + gap)
        if image is None:
            draw.rectangle((x, 0, x + tile_w - 1, tile_height - 1), fill=(200, 200, 200))
            _label(draw, (x, 0), name, font)
            draw.text((x + 8, tile_height // 2), "missing or unreadable", fill=(90, 0, 0), font=font)
            continue
        rgb = Image.fromarray(_to_uint8_rgb(image))
        sheet.paste(rgb.resize((tile_w, tile_height), Image.LANCZOS), (x, 0))
        if box is not None and image.shape[:2] == ref.shape[:2]:
            r, c, size = box
            sx, sy = tile_w / image.shape[1], tile_height / image.shape[0]
            draw.rectangle((x + c * sx, r * sy, x + (c + size) * sx, (r + size) * sy),
                           outline=(255, 221, 0), width=2)
            side = min(tile_w, tile_height)
            crop = rgb.crop((c, r, c + size, r + size)).resize((side, side), Image.NEAREST)
            sheet.paste(crop, (x + (tile_w - side) // 2, tile_height + gap))
            _label(draw, (x + (tile_w - side) // 2, tile_height + gap), f"{name} (x{side / size:.1f})", font)
        _label(draw, (x, 0), name, font)
    buf = _io.BytesIO()
    sheet.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def pick_scenes(names: Sequence[str], limit: int) -> list[str]:
    """At most ``limit`` of ``names`` (sorted), spread evenly from first to last."""
    ordered = sorted(names)
    if limit <= 0:
        return []
    if len(ordered) <= limit:
        return ordered
    picks = np.linspace(0, len(ordered) - 1, limit).round().astype(int)
    return [ordered[i] for i in sorted(set(picks.tolist()))]


def _read(path: Path | None) -> np.ndarray | None:
    if path is None:
        return None
    from ..io import read_image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return read_image(path)
    except Exception:  # drawn as "missing"; the failure itself is in the failures section
        return None


# -- sections ----------------------------------------------------------------------------------

def _summary_table(report: "EvaluationReport") -> str:
    summary = report.summary()
    best = report.best()
    head = "".join(f"<th>{_e(report._label(m))}</th>" for m in report.metrics)
    rows = []
    for method in report.methods:
        cells = []
        for m in report.metrics:
            st = summary[method][m.name]
            text = _e(_fmt_stat(st))
            n = f' title="{count(st.n, "image")}"' if st is not None else ""
            cells.append(f'<td class="best"{n}><strong>{text}</strong></td>' if method in best[m.name]
                         else f"<td{n}>{text}</td>")
        rows.append(f'<tr><th class="l">{_e(method)}</th>{"".join(cells)}</tr>')
    return (f'<table id="summary"><thead><tr><th class="l">method</th>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>'
            '<p class="note">mean ± std (population) over images; \u2191 higher is better, '
            '\u2193 lower is better; <strong>bold</strong>: best mean of the methods.</p>')


def _charts(report: "EvaluationReport") -> str:
    best = report.best()
    charts = []
    for m in report.metrics:
        values = [np.asarray([r[m.name] for r in report.rows
                              if r["method"] == method and r.get(m.name) is not None], dtype=np.float64)
                  for method in report.methods]
        charts.append(f'<figure class="chart">{bar_chart_svg(report._label(m), report.methods, values, best[m.name])}'
                      "</figure>")
    return f'<div class="charts">{"".join(charts)}</div>'


def _sheets(report: "EvaluationReport", max_scenes: int) -> str:
    scenes = pick_scenes(list(report.scene_files), max_scenes)
    total = len(report.scene_files)
    if not scenes:
        why = ("no scene files recorded" if not total else
               f"sheets switched off (0 of {total} scenes)")
        return f'<p class="note">{_e(why)}.</p>'
    out = [f'<p class="note">{len(scenes)} of {total} scenes'
           + (", spread evenly over the sorted names (--report-scenes sets how many)" if len(scenes) < total else "")
           + ". Yellow square: the detail enlarged in the second row, where the sources have the "
             "most edges.</p>"]
    for name in scenes:
        sources = report.scene_files[name]
        labels = [*report.sources[:len(sources)]] or [f"source {i + 1}" for i in range(len(sources))]
        images = [_read(p) for p in sources]
        for method in report.methods:
            labels.append(method)
            path = report.fused_files.get((name, method))
            images.append(_read(path) if path is not None and Path(path).is_file() else None)
        png = scene_sheet(labels, images)
        data = base64.b64encode(png).decode("ascii")
        alt = f"scene {name}: " + ", ".join(labels)
        out.append(f'<figure id="scene-{_e(name)}"><img class="sheet" alt="{_e(alt)}" '
                   f'src="data:image/png;base64,{data}"><figcaption>scene <code>{_e(name)}</code>: '
                   f'{_e(", ".join(labels))}</figcaption></figure>')
    return "".join(out)


def _per_image(report: "EvaluationReport") -> str:
    head = "".join(f"<th>{_e(m.display)}</th>" for m in report.metrics)
    rows = "".join(
        f'<tr><td class="l">{_e(r["image"])}</td><td class="l">{_e(r["method"])}</td>'
        + "".join(f"<td>{_e(_fmt(r.get(m.name)))}</td>" for m in report.metrics) + "</tr>"
        for r in report.rows)
    table = (f'<table id="per-image"><thead><tr><th class="l">image</th><th class="l">method</th>{head}'
             f"</tr></thead><tbody>{rows}</tbody></table>")
    opened = " open" if len(report.rows) <= 200 else ""
    return (f"<details{opened}><summary>{len(report.rows)} rows (image \u00d7 method); "
            f"- where a metric failed</summary>{table}</details>")


def _failures(report: "EvaluationReport") -> str:
    if not report.failures:
        return '<p id="failures">None: every image was scored.</p>'
    items = "".join(f"<li>{_e(f)}</li>" for f in report.failures)
    return (f'<p>{count(len(report.failures), "failure")}; the other images were scored.</p>'
            f'<ul class="fail" id="failures">{items}</ul>')


def _kv_table(pairs: Sequence[tuple[str, str]]) -> str:
    rows = "".join(f'<tr><th class="l">{_e(k)}</th><td class="l">{_e(v)}</td></tr>' for k, v in pairs)
    return f"<table>{rows}</table>"


def _metadata(report: "EvaluationReport") -> str:
    from .. import __version__
    from ..metrics import compiled
    from ..metrics.catalog import BUILTIN_ORDER
    from ..metrics.conventions import ASPECTS, convention

    n = len({r["image"] for r in report.rows})
    pairs = [
        ("fusekit", __version__),
        ("written", _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("python", f"{platform.python_version()} on {platform.system()} {platform.machine()}"),
        ("numpy", np.__version__),
        ("metric kernels", compiled.status()),
        ("dataset", str(report.dataset) if report.dataset else "-"),
        ("sources", ", ".join(report.sources) or "-"),
        ("scenes scored", f"{n} of {len(report.scene_files) or n}"),
        ("inputs", report.profile.inputs),
        ("profile", f"{report.profile.name}: {report.profile.summary}"),
        ("profile source", report.profile.reference),
    ]
    out = [_kv_table(pairs), "<h3>Conventions of profile " + _e(report.profile.name) + "</h3>"]
    head = "".join(f"<th class=\"l\">{_e(t)}</th>" for _, t in ASPECTS)
    rows = []
    for m in report.metrics:
        entry = convention(report.profile.name, m.name) if m.name in BUILTIN_ORDER else None
        if entry is None:
            rows.append(f'<tr><th class="l">{_e(m.name)}</th><td class="l" colspan="{len(ASPECTS) + 1}">'
                        f"plugin metric: see its documentation ({_e(m.reference)})</td></tr>")
            continue
        rows.append(f'<tr><th class="l">{_e(m.name)}</th>'
                    + "".join(f'<td class="l">{_e(entry[k])}</td>' for k, _ in ASPECTS)
                    + f'<td class="l">{_e(entry["paper"])}</td></tr>')
    out.append(f'<table id="conventions"><thead><tr><th class="l">metric</th>{head}<th class="l">paper</th>'
               f'</tr></thead><tbody>{"".join(rows)}</tbody></table>'
               '<p class="note">All profiles and metrics: docs/metric_conventions.md, or '
               '<code>fusekit eval --list-metrics --profile P</code>.</p>')
    out.append("<h3>Methods</h3>")
    for method in report.methods:
        info = report.method_info.get(method, {})
        if info.get("kind") == "method":
            opts = ", ".join(f"{k}={v}" for k, v in sorted(info.get("options", {}).items())) or "(defaults)"
            out.append(f"<p><strong>{_e(method)}</strong>: method <code>{_e(info.get('name', method))}</code>"
                       f" ({_e(info.get('summary', ''))}); options {_e(opts)}; fused images cached.</p>")
            weights = info.get("weights") or []
            task = info.get("options", {}).get("task")
            if task is not None and any(row.get("task") == task for row in weights):
                weights = [row for row in weights if row.get("task") == task]  # the cards of this run's task
            if weights:
                header = list(dict.fromkeys(k for row in weights for k in row))
                body = "".join("<tr>" + "".join(f'<td class="l">{_e(row.get(h, ""))}</td>' for h in header)
                               + "</tr>" for row in weights)
                out.append('<table class="weights"><caption class="note">weights the method ships '
                           '(pass --weights VARIANT)</caption><thead><tr>'
                           + "".join(f'<th class="l">{_e(h)}</th>' for h in header)
                           + f"</tr></thead><tbody>{body}</tbody></table>")
        elif info.get("kind") == "folder":
            out.append(f"<p><strong>{_e(method)}</strong>: fused images read from "
                       f"<code>{_e(info.get('folder', ''))}</code>.</p>")
        else:
            out.append(f"<p><strong>{_e(method)}</strong></p>")
    return "".join(out)


def render_html(report: "EvaluationReport", *, max_scenes: int = DEFAULT_MAX_SCENES,
                title: str | None = None) -> str:
    """The report as one self-contained HTML document.

    Parameters
    ----------
    report : EvaluationReport
        What :func:`fusekit.evaluate` returned.
    max_scenes : int
        Most scenes drawn as contact sheets (0: none).
    title : str, optional
        Page title; default names the dataset.

    Returns
    -------
    str
        HTML5 with inline CSS, SVG and base64 PNG; no external resources.
    """
    where = report.dataset.name if report.dataset else "evaluation"
    title = title or f"fusekit eval: {where}"
    n = len({r["image"] for r in report.rows})
    lead = (f"{count(n, 'image')}, {count(len(report.methods), 'method')}, "
            f"{count(len(report.metrics), 'metric')}; profile {report.profile.name}; "
            f"{count(len(report.failures), 'failure')}")
    body = [
        f"<h1>{_e(title)}</h1><p class=\"note\">{_e(lead)}. Dataset <code>{_e(report.dataset or '-')}"
        f"</code>, sources {_e(', '.join(report.sources) or '-')}.</p>",
        '<h2 id="s-summary">Summary</h2>', _summary_table(report),
        '<h2 id="s-charts">Per metric</h2>', _charts(report),
        '<h2 id="s-scenes">Scenes</h2>', _sheets(report, max_scenes),
        '<h2 id="s-images">Per image</h2>', _per_image(report),
        '<h2 id="s-failures">Failures</h2>', _failures(report),
        '<h2 id="s-run">Run</h2>', _metadata(report),
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(body) + "\n</body></html>\n")


def write_html_report(report: "EvaluationReport", path: str | os.PathLike, *,
                      max_scenes: int = DEFAULT_MAX_SCENES) -> Path:
    """Write :func:`render_html` to ``path`` atomically (a temporary file renamed over it).

    Returns
    -------
    Path

    Raises
    ------
    InputError
        The folder cannot be written or the disk is full.
    """
    from ..io import write_bytes_atomic

    text = render_html(report, max_scenes=max_scenes)
    return write_bytes_atomic(path, text.encode("utf-8"), what="report")
