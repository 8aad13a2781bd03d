"""The evaluation report: per-image rows, per-method statistics, failures, and their formats."""

from __future__ import annotations

import io as _io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ParameterError
from ..metrics.base import Metric
from ..metrics.profiles import Profile
from ..text import count

#: What every report says about its inputs.
INPUT_NOTE = "luminance (Y of BT.601 YCbCr), 0-255 scale"



@dataclass(frozen=True)
class Failure:
    """Something that could not be scored.

    Attributes
    ----------
    image : str
        Image name (file name without extension).
    method : str or None
        Method or fused-folder label; ``None`` if the source set itself is
        unusable.
    message : str
    metric : str or None
        The metric that failed, if only one did.
    """

    image: str
    method: str | None
    message: str
    metric: str | None = None

    def __str__(self) -> str:
        where = self.image + (f" [{self.method}]" if self.method else "")
        return f"{where}{' ' + self.metric if self.metric else ''}: {self.message}"


@dataclass(frozen=True)
class Stat:
    """Mean and population standard deviation of one metric over images."""

    mean: float
    std: float
    n: int


#: Report format of each file extension ``-o`` understands.
REPORT_SUFFIXES: dict[str, str] = {".csv": "csv", ".json": "json", ".md": "markdown", ".markdown": "markdown",
                                   ".tex": "latex", ".txt": "table"}


def report_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """The format to write ``path`` in: ``fmt`` if given, else from the file extension.

    Parameters
    ----------
    path : path-like
        The report file.
    fmt : str, optional
        An explicit format (``--format``); it wins over the extension.

    Returns
    -------
    str
        ``"csv"``, ``"json"``, ``"markdown"``, ``"latex"`` or ``"table"``.

    Raises
    ------
    ParameterError
        No ``fmt`` and an extension that names no format (writing CSV into
        ``scores.xyz`` would hide the mistake).
    """
    if fmt is not None:
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in REPORT_SUFFIXES:
        raise ParameterError(f"{path}: cannot tell the report format from {suffix or 'a name without extension'!r}; "
                             f"use one of {', '.join(REPORT_SUFFIXES)} or give --format")
    return REPORT_SUFFIXES[suffix]


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    mag = abs(value)
    return f"{value:.2f}" if mag >= 100 else f"{value:.3f}" if mag >= 1 else f"{value:.4f}"


_LATEX_SPECIAL = {"\\": "\\textbackslash{}", "&": "\\&", "%": "\\%", "$": "\\$", "#": "\\#",
                  "_": "\\_", "{": "\\{", "}": "\\}", "~": "\\textasciitilde{}", "^": "\\textasciicircum{}"}


def _latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped."""
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def _fmt_stat(st: "Stat | None") -> str:
    """``mean ± std`` with the decimals that suit the mean."""
    if st is None:
        return "-"
    if not (math.isfinite(st.mean) and math.isfinite(st.std)):
        return f"{_fmt(st.mean)} ± {_fmt(st.std)}"
    mag = abs(st.mean)
    digits = 2 if mag >= 100 else 3 if mag >= 1 else 4
    return f"{st.mean:.{digits}f} ± {st.std:.{digits}f}"


def _json_number(value: float | None) -> float | str | None:
    if value is None or math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


@dataclass
class EvaluationReport:
    """Per-image metric values, per-method statistics and failures.

    Attributes
    ----------
    profile : Profile
    metrics : list of Metric
        In column order.
    methods : list of str
        Method / fused-folder labels in order.
    rows : list of dict
        One per scored image and method: ``{"image", "method", <metric>:
        float or None}``; ``None`` where that metric failed.
    failures : list of Failure
    dataset : Path or None
    sources : tuple of str
        Modality sub-folders in source order.
    produced : int
        Fused images produced (not taken from the cache) in this run.
    scene_files : dict of str to tuple of Path
        Source files of each scene, in source order (for the HTML report's
        contact sheets; filled by :func:`~fusekit.evaluation.evaluate`).
    fused_files : dict of (str, str) to Path
        ``(image, method)`` -> the fused file that was (or would have been)
        scored; a method's file lies in its cache folder.
    method_info : dict of str to dict
        Per method label: ``kind`` (``"method"`` or ``"folder"``) and, for
        methods, ``name``, ``options``, ``summary`` and ``weights`` (the rows
        of the method's ``weight_variants()``), for folders ``folder``.
    """

    profile: Profile
    metrics: list[Metric]
    methods: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    dataset: Path | None = None
    sources: tuple[str, ...] = ()
    produced: int = 0
    scene_files: dict[str, tuple[Path, ...]] = field(default_factory=dict)
    fused_files: dict[tuple[str, str], Path] = field(default_factory=dict)
    method_info: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether nothing failed."""
        return not self.failures

    def values(self, method: str, metric: str) -> np.ndarray:
        """The metric's per-image values for ``method`` (failed ones left out)."""
        vals = [r[metric] for r in self.rows if r["method"] == method and r.get(metric) is not None]
        return np.asarray(vals, dtype=np.float64)

    def summary(self) -> dict[str, dict[str, Stat | None]]:
        """``{method: {metric: Stat or None}}``: mean and population std over images."""
        out: dict[str, dict[str, Stat | None]] = {}
        for method in self.methods:
            out[method] = {}
            for m in self.metrics:
                v = self.values(method, m.name)
                if v.size == 0:
                    out[method][m.name] = None
                    continue
                with np.errstate(invalid="ignore"):
                    std = float(np.std(v)) if np.isfinite(v).all() else float("nan")
                out[method][m.name] = Stat(float(np.mean(v)), std, int(v.size))
        return out

    def best(self) -> dict[str, set[str]]:
        """``{metric: methods}``: the methods with the best mean of each metric (ties share it).

        "Best" follows the metric's direction. Empty when fewer than two
        methods have a finite mean for that metric: nothing to compare.
        """
        summary = self.summary()
        out: dict[str, set[str]] = {}
        for m in self.metrics:
            means = {method: per[m.name].mean for method, per in summary.items()
                     if per[m.name] is not None and math.isfinite(per[m.name].mean)}
            if len(means) < 2:
                out[m.name] = set()
                continue
            top = max(means.values()) if m.higher_is_better else min(means.values())
            out[m.name] = {method for method, v in means.items() if v == top}
        return out

    def _header(self) -> str:
        where = f"{self.dataset} " if self.dataset else ""
        srcs = f"sources {', '.join(self.sources)}; " if self.sources else ""
        n = len({r["image"] for r in self.rows})
        return (f"{where}({srcs}{count(n, 'image')}; {self.profile.inputs})\n"
                f"profile {self.profile.name}: {self.profile.summary}")

    def _label(self, m: Metric) -> str:
        unit = m.unit_for(self.profile.name)
        return f"{m.display} {m.arrow}" + (f" ({unit})" if unit else "")

    def format_table(self) -> str:
        """Terminal table: one row per metric (arrow, unit), one column per method (mean ± std),
        ``*`` on the best method of each metric."""
        summary = self.summary()
        best = self.best()
        header = ["metric", *self.methods]
        lines = [header]
        for m in self.metrics:
            cells = [self._label(m)]
            for method in self.methods:
                mark = " *" if method in best[m.name] else "  "
                cells.append(_fmt_stat(summary[method][m.name]) + mark)
            lines.append(cells)
        widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
        text = [self._header(), ""]
        for k, row in enumerate(lines):
            text.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])
                                  for i, c in enumerate(row)).rstrip())
            if k == 0:
                text.append("  ".join("-" * w for w in widths))
        text.append("")
        text.append("mean ± std over images; \u2191 higher is better, \u2193 lower is better"
                    + ("; * best of the methods" if any(best.values()) else ""))
        return "\n".join(text)

    def to_csv(self) -> str:
        """Per-image rows: ``image,method,<metric>...`` (empty where a metric failed)."""
        import csv  # only for CSV output

        buf = _io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["image", "method", *(m.name for m in self.metrics)])
        for r in self.rows:
            writer.writerow([r["image"], r["method"],
                             *("" if r.get(m.name) is None else repr(float(r[m.name]))
                               for m in self.metrics)])
        return buf.getvalue()

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain data (infinite values as ``"inf"``, missing as ``None``)."""
        summary = self.summary()
        return {
            "dataset": str(self.dataset) if self.dataset else None,
            "sources": list(self.sources),
            "input": self.profile.inputs,
            "profile": {"name": self.profile.name, "summary": self.profile.summary,
                        "reference": self.profile.reference},
            "metrics": [{"name": m.name, "full_name": m.full_name,
                         "unit": m.unit_for(self.profile.name),
                         "higher_is_better": m.higher_is_better, "reference": m.reference}
                        for m in self.metrics],
            "summary": {method: {name: (None if st is None else
                                        {"mean": _json_number(st.mean), "std": _json_number(st.std),
                                         "n": st.n})
                                 for name, st in per.items()}
                        for method, per in summary.items()},
            "rows": [{k: (_json_number(v) if isinstance(v, float) else v) for k, v in r.items()}
                     for r in self.rows],
            "failures": [{"image": f.image, "method": f.method, "metric": f.metric,
                          "message": f.message} for f in self.failures],
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_markdown(self) -> str:
        """Summary table (mean ± std per method, the best in bold), per-image table, and failures."""
        summary = self.summary()
        best = self.best()
        head = ["method", *(self._label(m) for m in self.metrics)]
        out = [f"<!-- {self._header().replace(chr(10), '; ')} -->", "", "## Summary", "",
               "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for method in self.methods:
            cells = []
            for m in self.metrics:
                cell = _fmt_stat(summary[method][m.name])
                cells.append(f"**{cell}**" if method in best[m.name] else cell)
            out.append("| " + " | ".join([method, *cells]) + " |")
        out += ["", f"Profile `{self.profile.name}`: {self.profile.summary}. Inputs: {self.profile.inputs}."
                + (" Bold: best mean of the methods." if any(best.values()) else ""),
                "", "## Per image", "",
                "| image | method | " + " | ".join(m.name for m in self.metrics) + " |",
                "|" + "---|" * (len(self.metrics) + 2)]
        for r in self.rows:
            out.append("| " + " | ".join([r["image"], r["method"],
                                          *(_fmt(r.get(m.name)) for m in self.metrics)]) + " |")
        if self.failures:
            out += ["", "## Failures", ""] + [f"- {f}" for f in self.failures]
        return "\n".join(out) + "\n"

    def to_latex(self) -> str:
        """Summary as a LaTeX ``tabular`` (booktabs): one row per method, mean per metric, best in bold.

        Metrics carry their arrows and units in the header, as papers print
        them; a comment line names the dataset, the profile and the number of
        images. Needs ``\\usepackage{booktabs}``.
        """
        summary = self.summary()
        best = self.best()
        n = len({r["image"] for r in self.rows})
        head = []
        for m in self.metrics:
            unit = m.unit_for(self.profile.name)
            arrow = "$\\uparrow$" if m.higher_is_better else "$\\downarrow$"
            head.append(f"{_latex_escape(m.display)} {arrow}" + (f" ({_latex_escape(unit)})" if unit else ""))
        where = f"{self.dataset}; " if self.dataset else ""
        out = [f"% fusekit eval: {where}profile {self.profile.name}; mean over {count(n, 'image')}",
               "\\begin{tabular}{l" + "c" * len(self.metrics) + "}", "\\toprule",
               " & ".join(["Method", *head]) + " \\\\", "\\midrule"]
        for method in self.methods:
            cells = []
            for m in self.metrics:
                st = summary[method][m.name]
                cell = _fmt(None if st is None else st.mean)
                cells.append(f"\\textbf{{{cell}}}" if method in best[m.name] else cell)
            out.append(" & ".join([_latex_escape(method), *cells]) + " \\\\")
        out += ["\\bottomrule", "\\end{tabular}"]
        return "\n".join(out) + "\n"

    def render(self, fmt: str) -> str:
        """The report as ``"table"``, ``"csv"``, ``"json"``, ``"markdown"`` or ``"latex"`` text."""
        renderers = {"table": self.format_table, "csv": self.to_csv, "json": self.to_json,
                     "markdown": self.to_markdown, "md": self.to_markdown, "latex": self.to_latex}
        if fmt not in renderers:
            raise ParameterError(f"unknown report format {fmt!r}; use csv, json, markdown, latex or table")
        text = renderers[fmt]()
        return text if text.endswith("\n") else text + "\n"

    def write_html(self, path: str | os.PathLike, *, max_scenes: int = 12) -> Path:
        """Write the self-contained HTML report (see :mod:`fusekit.evaluation.html_report`)."""
        from .html_report import write_html_report

        return write_html_report(self, path, max_scenes=max_scenes)

    def write(self, path: str | os.PathLike, fmt: str | None = None) -> Path:
        """Write the report; the format defaults to the file extension (see :func:`report_format`)."""
        path = Path(path)
        text = self.render(report_format(path, fmt))
        from ..io import write_bytes_atomic

        return write_bytes_atomic(path, text.encode("utf-8"), what="report")
