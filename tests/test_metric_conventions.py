"""The conventions data, ``fusekit eval --list-metrics --profile P`` and docs/metric_conventions.md agree."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from fusekit.metrics import BUILTIN_METRICS, PROFILES, compute
from fusekit.metrics.conventions import (ASPECTS, check, convention, conventions_markdown,
                                         format_conventions)

PAGE = Path(__file__).resolve().parents[1] / "docs" / "metric_conventions.md"


def _page_tables(text: str) -> dict[str, dict[str, list[str]]]:
    """``{section title: {metric: [cell per profile]}}`` from the page's Markdown tables."""
    tables: dict[str, dict[str, list[str]]] = {}
    title = None
    for line in text.splitlines():
        if line.startswith("## "):
            title = line[3:].strip()
        elif title and line.startswith("| `"):
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            tables.setdefault(title, {})[cells[0].strip("`")] = cells[1:]
    return tables


def test_every_metric_of_every_profile_has_every_aspect():
    assert check() == []
    for p in PROFILES:
        for m in BUILTIN_METRICS:
            entry = convention(p, m.name)
            assert (entry is None) == (not PROFILES[p].defines(m.name))
            if entry is not None:
                assert set(entry) == {k for k, _ in ASPECTS} | {"paper", "unit"}
                assert entry["paper"] == m.reference and entry["unit"] == (m.unit_for(p) or "no unit")


def test_page_is_generated_from_the_data():
    assert PAGE.read_text(encoding="utf-8") == conventions_markdown(), \
        "regenerate: python -m fusekit.metrics.conventions docs/metric_conventions.md"


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_command_prints_what_the_page_shows(run_cli, profile: str):
    result = run_cli(["eval", "--list-metrics", "--profile", profile])
    assert result.exit_code == 0, result.output
    assert format_conventions(profile) in result.output
    # every "aspect: value" line the command prints is the page's cell for that metric and profile
    tables = _page_tables(PAGE.read_text(encoding="utf-8"))
    column = list(PROFILES).index(profile)
    titles = {title: key for key, title in ASPECTS}
    metric = None
    seen = 0
    for line in result.output.splitlines():
        head = re.match(r"^([a-z0-9_-]+) [\u2191\u2193] ", line)
        if head:
            metric = head.group(1)
            continue
        row = re.match(r"^  (\S.*?)\s{2,}(.*)$", line)
        if metric and row and row.group(1) in titles:
            title = row.group(1)
            section = title[0].upper() + title[1:]
            assert tables[section][metric][column] == row.group(2), (metric, title)
            seen += 1
    defined = sum(PROFILES[profile].defines(m.name) for m in BUILTIN_METRICS)
    assert seen == defined * len(ASPECTS)
    undefined = [m.name for m in BUILTIN_METRICS if not PROFILES[profile].defines(m.name)]
    for name in undefined:
        assert tables["Log base"][name][column] == "n/a"


def test_option_order_does_not_matter(run_cli):
    a = run_cli(["eval", "--list-metrics", "--profile", "cddfuse"])
    b = run_cli(["eval", "--profile", "cddfuse", "--list-metrics"])
    assert a.exit_code == b.exit_code == 0 and a.output == b.output
    assert "ln (nats" in a.output and "Evaluator.SSIM" in a.output


def test_without_profile_the_overview_stays(run_cli):
    result = run_cli(["eval", "--list-metrics"])
    assert result.exit_code == 0
    assert "profile vifb:" in result.output and "--list-metrics --profile P" in result.output
    assert "log base" not in result.output


def test_unknown_profile_is_one_line_error(run_cli):
    result = run_cli(["eval", "--list-metrics", "--profile", "cdfuse"])
    assert result.exit_code != 0 and "cddfuse" in result.output


def test_nats_note_matches_the_numbers():
    """The page's 'nats = 0.693 x bits' is what the two profiles compute on one image pair."""
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (48, 48)).astype(np.uint8)
    b = (a // 2 + rng.integers(0, 128, (48, 48))).astype(np.uint8)
    f = ((a.astype(int) + b) // 2).astype(np.uint8)
    bits = compute(f, [a, b], metrics="mi", profile="standard")["mi"]
    nats = compute(f, [a, b], metrics="mi", profile="cddfuse")["mi"]
    assert nats == pytest.approx(math.log(2) * bits, rel=1e-12)
    assert "0.693 x bits" in PAGE.read_text(encoding="utf-8")
