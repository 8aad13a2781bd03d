"""The classic methods declare their options as data (issue 23): typed, with help, same defaults as __init__."""

from __future__ import annotations

import numpy as np
import pytest

import fusekit
from fusekit.errors import ParameterError
from fusekit.plugins import build_host

HOST = build_host(entry_points=False)
CLASSIC = [e.name for e in HOST.fusers if e.plugin == "fusekit_classic"]


def test_classic_methods_are_found():
    assert {"average", "laplacian-pyramid", "dwt", "guided-filter", "exposure", "focus"} <= set(CLASSIC)


@pytest.mark.parametrize("method", CLASSIC)
def test_every_classic_option_is_typed_and_explained(method):
    cls = HOST.fusers.get(method)
    for opt in cls.declared_options():  # PluginError if the declaration and __init__ disagree
        assert opt.type is not None, f"{method}.{opt.name} has no declared type"
        assert opt.help, f"{method}.{opt.name} has no help"


def test_choices_are_declared_where_the_method_has_them():
    (measure,) = [o for o in HOST.fusers.get("focus").declared_options() if o.name == "measure"]
    assert measure.choices == ("sml", "sf")
    with pytest.raises(ParameterError, match="one of sml, sf"):
        measure.parse("variance")


def test_none_text_restores_an_automatic_default():
    (levels,) = [o for o in HOST.fusers.get("exposure").declared_options() if o.name == "levels"]
    assert levels.parse("none") is None and levels.parse("5") == 5
    assert fusekit.get_fuser("exposure", levels=None).levels is None


def test_numpy_numbers_still_pass_as_options():
    fuser = fusekit.get_fuser("guided-filter", r1=np.int64(9), eps1=np.float32(0.25))
    assert fuser.r1 == 9 and fuser.eps1 == pytest.approx(0.25)


def test_a_wrong_type_names_the_option_and_its_range():
    with pytest.raises(ParameterError, match=r"levels takes a int value, got 2.5 \(.*in \[1, 30\]"):
        fusekit.get_fuser("laplacian-pyramid", levels=2.5)
