"""The contract every registered fuser must meet, checked on real image crops.

Shape, dtype and range of the output; sources left untouched; the same result
twice; N-input methods really take three sources. A learned method whose
weights are not installed is reported as skipped with the reason.
"""

from __future__ import annotations

import numpy as np
import pytest

import fusekit
from fusekit.errors import WeightsError
from fusekit.plugins import build_host

HOST = build_host(entry_points=False)
METHODS = HOST.fusers.names()


def real_sources(demo_pair, count: int, colour: bool) -> list[np.ndarray]:
    from fusekit.color import luminance

    ir, vi = demo_pair
    crops = [ir[100:164, 200:280], vi[100:164, 200:280]]
    if not colour:
        crops = [luminance(c) for c in crops]
    while len(crops) < count:  # a third source: a darker copy of the second
        crops.append((crops[-1] * 0.6).astype(np.float32))
    return crops[:count]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("colour", [False, True], ids=["grey", "colour"])
def test_fuser_contract(method, colour, demo_pair):
    fuser = HOST.fusers.get(method).create()
    try:
        fuser.prepare()
    except WeightsError as exc:
        pytest.skip(f"{method}: {exc}")
    sources = real_sources(demo_pair, fuser.min_sources, colour)
    before = [s.copy() for s in sources]
    fused = fusekit.fuse(sources, method=fuser)
    for src, orig in zip(sources, before):
        np.testing.assert_array_equal(src, orig)
    expected_shape = sources[1].shape if colour else sources[0].shape
    assert fused.shape == expected_shape
    assert fused.dtype == np.float32
    assert np.isfinite(fused).all() and fused.min() >= 0.0 and fused.max() <= 1.0
    np.testing.assert_array_equal(fused, fusekit.fuse(sources, method=fuser))


@pytest.mark.parametrize("method", [m for m in METHODS if HOST.fusers.get(m).max_sources is None])
def test_n_input_methods_take_three_sources(method, demo_pair):
    fuser = HOST.fusers.get(method).create()
    try:
        fuser.prepare()
    except WeightsError as exc:
        pytest.skip(f"{method}: {exc}")
    sources = real_sources(demo_pair, 3, colour=False)
    fused = fusekit.fuse(sources, method=fuser)
    assert fused.shape == sources[0].shape and fused.dtype == np.float32


def test_methods_declare_tasks_and_inputs():
    for entry in HOST.fusers:
        cls = entry.obj
        assert cls.tasks and set(cls.tasks) <= set(fusekit.TASKS), entry.name
        assert cls.min_sources >= 2 and (cls.max_sources is None or cls.max_sources >= cls.min_sources)
        assert cls.summary, f"{entry.name} has no summary line"


@pytest.mark.parametrize("method", METHODS)
def test_declared_options_match_init_and_parse_their_defaults(method):
    """Every method's options (declared or read from __init__) agree with __init__, and each
    declared default survives a round trip through its command-line text."""
    cls = HOST.fusers.get(method)
    for opt in cls.declared_options():  # raises PluginError on a name or default mismatch
        if opt.type is not None and opt.default is not None:
            assert opt.parse(str(opt.default)) == opt.default
