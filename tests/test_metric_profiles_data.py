"""Profiles are data: no module branches on a profile's name; range errors; undefined metrics."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from fusekit.errors import InputError
from fusekit.metrics import Profile, compute
from fusekit.metrics.conventions import convention

ROOT = Path(__file__).resolve().parents[1] / "fusekit"


def test_no_module_branches_on_a_profile_name():
    pattern = re.compile(r"prof(ile)?\.name\s*[!=]=|profile\s*[!=]=\s*[\"']")
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in ROOT.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1)
            if pattern.search(line) and "p.name != profile.name" not in line]
    assert hits == []


def test_float_outside_unit_range_is_an_error_not_a_rescale():
    a = np.full((8, 8), 200.0)
    with pytest.raises(InputError, match=r"outside 0\.\.1.*data_range=255"):
        compute(a, [a, a], metrics="en")
    assert float(compute(a, [a, a], metrics="en", data_range=255)["en"]) == 0.0


def test_a_profile_is_a_table_a_new_one_needs_no_code_elsewhere():
    mine = Profile(name="mine", summary="test", reference="-", implementations={"en": lambda ctx: 42.0},
                   exclusive=True, conventions={"en": {"log": "x"}})
    a = np.zeros((8, 8), np.uint8)
    assert float(compute(a, [a, a], metrics="en", profile=mine)["en"]) == 42.0
    with pytest.raises(InputError, match="profiles that define it: standard, cddfuse"):
        compute(a, [a, a], metrics="sd", profile=mine)


def test_undefined_metric_error_is_one_line_naming_the_profiles():
    a = np.zeros((8, 8), np.uint8)
    with pytest.raises(InputError) as exc:
        compute(a, [a, a], metrics="scd", profile="vifb")
    message = str(exc.value)
    assert "\n" not in message
    assert "'scd'" in message and "'vifb'" in message and "standard" in message and "cddfuse" in message
    assert convention("vifb", "scd") is None
