"""The classic baselines (fusekit_classic): contract, identity, N inputs, bad input.

Behaviour on benchmark images (Lytro, MEFB, agreement with OpenCV) is in
``test_classic_real.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import fusekit
import fusekit_classic as fc
from fusekit.errors import InputError, ParameterError
from fusekit.plugins import build_host
from fusekit_classic import pyramid

NAMES = [cls.name for cls in fc.METHODS]


def _rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image


@pytest.fixture(scope="module")
def crops(demo_pair):
    """Real infrared / visible crops 64 x 80: luminance pair and colour pair."""
    from fusekit.color import luminance

    ir, vi = demo_pair
    ir_c, vi_c = _rgb(ir[100:164, 200:280]), _rgb(vi[100:164, 200:280])
    grey = [luminance(ir_c), luminance(vi_c)]
    return {"grey": grey, "colour": [ir_c, vi_c]}


def _sources(cls, crops, count=2):
    base = crops["colour"] if cls.needs_color else crops["grey"]
    out = list(base)
    while len(out) < count:  # further sources: darker / brighter versions of the second
        out.append(np.clip(base[1] * (0.5 + 0.4 * len(out)), 0, 1).astype(np.float32))
    return out[:count]


# -- registration ----------------------------------------------------------

def test_plugin_registers_every_method():
    host = build_host(entry_points=False)
    for cls in fc.METHODS:
        entry = host.fusers.entry(cls.name)
        assert entry.obj is cls
        assert "classic" in entry.plugin
    assert {c.name for c in fc.METHODS} >= {"average", "max", "pca", "laplacian-pyramid", "dwt",
                                            "guided-filter", "exposure", "focus"}
    assert [c.name for c in fc.METHODS if c.needs_color] == ["exposure", "focus"]
    assert fc.Exposure.tasks == ("meif",) and fc.Focus.tasks == ("mfif",)
    assert set(fc.Maximum.tasks) == {"ivif", "mif"}
    assert all(c.max_sources is None and c.min_sources == 2 for c in fc.METHODS)


# -- the fuser contract ----------------------------------------------------

@pytest.mark.parametrize("cls", fc.METHODS, ids=NAMES)
def test_contract(cls, crops):
    fuser = cls()
    sources = _sources(cls, crops)
    before = [s.copy() for s in sources]
    fused = fuser.fuse(sources)
    for src, orig in zip(sources, before):
        np.testing.assert_array_equal(src, orig)
    assert fused.shape == sources[0].shape
    assert fused.dtype == np.float32
    assert np.isfinite(fused).all() and fused.min() >= 0.0 and fused.max() <= 1.0
    np.testing.assert_array_equal(fused, fuser.fuse(sources))
    # something of both sources is in the result (it is not just a copy of one)
    assert not np.array_equal(fused, sources[0]) and not np.array_equal(fused, sources[1])


@pytest.mark.parametrize("cls", fc.METHODS, ids=NAMES)
def test_identity(cls, crops):
    """Fusing an image with itself (twice or three times) returns it, to rounding."""
    image = _sources(cls, crops)[1]
    for count in (2, 3):
        fused = cls().fuse([image] * count)
        np.testing.assert_allclose(fused, image, atol=2e-6, rtol=0)


@pytest.mark.parametrize("cls", fc.METHODS, ids=NAMES)
def test_float64_and_non_contiguous_sources(cls, crops):
    """Views and float64 arrays give the float32 result of contiguous copies."""
    sources = _sources(cls, crops)
    views = [np.asarray(s, dtype=np.float64)[::2, ::2] for s in sources]
    copies = [np.ascontiguousarray(v, dtype=np.float32) for v in views]
    np.testing.assert_allclose(cls().fuse(views), cls().fuse(copies), atol=1e-6)


# -- N inputs --------------------------------------------------------------

@pytest.mark.parametrize("cls", fc.METHODS, ids=NAMES)
def test_n_inputs_through_the_api(cls, crops):
    """Three- and four-source fusion through fusekit.fuse; the extra sources matter."""
    three = _sources(cls, crops, 3)
    four = _sources(cls, crops, 4)
    f3 = fusekit.fuse(three, method=cls.name)
    f4 = fusekit.fuse(four, method=cls.name)
    assert f3.shape == f4.shape == three[0].shape
    assert not np.array_equal(f3, fusekit.fuse(three[:2], method=cls.name))
    assert not np.array_equal(f3, f4)


def test_average_and_max_of_four(crops):
    four = _sources(fc.Average, crops, 4)
    np.testing.assert_allclose(fc.Average().fuse(four), np.mean(four, axis=0), atol=1e-6)
    np.testing.assert_array_equal(fc.Maximum().fuse(four), np.max(four, axis=0))


def test_focus_stack_of_four_picks_the_sharp_quadrant():
    """A 4-image focus stack where each image is sharp in one quadrant only."""
    rng = np.random.default_rng(1)
    sharp = ndimage.gaussian_filter(rng.random((96, 96)), 1.0).astype(np.float32)
    sharp = (sharp - sharp.min()) / (sharp.max() - sharp.min())
    blurred = ndimage.gaussian_filter(sharp, 4).astype(np.float32)
    quads = [(slice(0, 48), slice(0, 48)), (slice(0, 48), slice(48, 96)),
             (slice(48, 96), slice(0, 48)), (slice(48, 96), slice(48, 96))]
    stack = []
    for q in quads:
        img = blurred.copy()
        img[q] = sharp[q]
        stack.append(img)
    dm = fc.Focus().decision_map(stack)
    for k, (rows, cols) in enumerate(quads):
        inner = dm[rows, cols][6:-6, 6:-6]
        assert (inner == k).mean() > 0.95
    fused = fc.Focus().fuse(stack)
    err = np.abs(fused - sharp)
    assert err.mean() < 0.02
    assert err.mean() < 0.25 * np.abs(fc.Average().fuse(stack) - sharp).mean()


def test_focus_takes_colour_from_the_sharp_source():
    """Whole RGB pixels come from the sharp source: no chroma of blurred objects leaks in."""
    rng = np.random.default_rng(11)
    sharp = ndimage.gaussian_filter(rng.random((64, 64, 3)), (1, 1, 0)).astype(np.float32)
    sharp = (sharp - sharp.min()) / (sharp.max() - sharp.min())
    blurred = ndimage.gaussian_filter(sharp, (4, 4, 0))
    blurred[..., 0] = np.clip(blurred[..., 0] + 0.3, 0, 1)   # a red cast on the blurred parts
    left = np.arange(64)[None, :, None] < 32
    near = np.where(left, sharp, blurred).astype(np.float32)
    far = np.where(left, blurred, sharp).astype(np.float32)
    fused = fusekit.fuse([near, far], method="focus")
    assert fused.shape == (64, 64, 3)
    err = np.abs(fused - sharp)[:, 8:-8]
    assert err.mean() < 0.03 and err[..., 0].mean() < 0.05
    grey = fusekit.fuse([near[..., 1], far[..., 1]], method="focus")
    assert grey.ndim == 2   # grey in, grey out


def test_exposure_bracket_of_three_prefers_well_exposed():
    """Exposure fusion of an under/mid/over bracket stays closest to the mid exposure."""
    rng = np.random.default_rng(2)
    scene = ndimage.gaussian_filter(rng.random((64, 64, 3)), (2, 2, 0))
    scene = ((scene - scene.min()) / (scene.max() - scene.min())).astype(np.float32)
    bracket = [np.clip(scene * g, 0, 1).astype(np.float32) for g in (0.25, 1.0, 4.0)]
    fused = fc.Exposure().fuse(bracket)
    assert fused.shape == (64, 64, 3)
    errors = [np.abs(fused - b).mean() for b in bracket]
    assert errors[1] == min(errors)
    w = fc.Exposure().weights(bracket)
    assert w.shape == (3, 64, 64)
    np.testing.assert_allclose(w.sum(axis=0), 1.0, atol=1e-5)
    assert w[1].mean() > max(w[0].mean(), w[2].mean())


def test_exposure_grey_sources_skip_saturation():
    """Grey brackets (R = G = B) get contrast and exposedness weights, not all-zero ones."""
    rng = np.random.default_rng(3)
    grey = ndimage.gaussian_filter(rng.random((48, 48)), 2).astype(np.float32)
    grey = (grey - grey.min()) / (grey.max() - grey.min())
    bracket = [_rgb(np.clip(grey * g, 0, 1).astype(np.float32)) for g in (0.3, 1.0)]
    w = fc.Exposure().weights(bracket)
    assert w[1].mean() > 0.6   # the well-exposed source dominates
    fused = fusekit.fuse([b[..., 0] for b in bracket], method="exposure")
    assert fused.ndim == 2     # grey in, grey out through the API


def test_exposure_workers_do_not_change_the_result(crops):
    sources = _sources(fc.Exposure, crops, 3)
    np.testing.assert_array_equal(fc.Exposure(workers=1).fuse(sources),
                                  fc.Exposure(workers=3).fuse(sources))


def test_exposure_threaded_and_stacked_paths_agree(crops, monkeypatch):
    """Large images run per channel in threads, small ones inline: the same bits either way."""
    from fusekit_classic import exposure

    sources = _sources(fc.Exposure, crops, 3)
    monkeypatch.setattr(exposure, "_STACKED", 0)                        # fine levels plane by plane
    monkeypatch.setattr(exposure, "_THREAD_PIXELS", 0)                  # every size threaded
    threaded = fc.Exposure(workers=3).fuse(sources)
    monkeypatch.setattr(exposure, "_THREAD_PIXELS", 10 ** 12)           # every size stacked
    np.testing.assert_array_equal(fc.Exposure(workers=3).fuse(sources), threaded)
    np.testing.assert_array_equal(fc.Exposure(levels=2).fuse(sources[:2]),
                                  _threaded(monkeypatch, exposure, sources[:2], levels=2))


def test_exposure_stacked_and_per_plane_levels_agree(crops, monkeypatch):
    """Blending coarse levels as one stack or fine levels plane by plane gives the same bits."""
    from fusekit_classic import exposure

    sources = _sources(fc.Exposure, crops, 3)
    monkeypatch.setattr(exposure, "_STACKED", 0)                        # every level plane by plane
    per_plane = fc.Exposure(workers=1).fuse(sources)
    monkeypatch.setattr(exposure, "_STACKED", 10 ** 12)                 # every level stacked
    np.testing.assert_array_equal(fc.Exposure(workers=1).fuse(sources), per_plane)


def _textbook_exposure(fuser, sources):
    """Mertens's blend as written: every source's Laplacian pyramid weighted by the Gaussian
    pyramid of its weight map, summed, collapsed, clipped (no reference source)."""
    weights = fuser.weights(sources)                                          # S x H x W
    planes = np.stack([np.asarray(s).transpose(2, 0, 1) for s in sources])   # S x 3 x H x W
    depth = pyramid.max_levels(*planes.shape[2:])
    if fuser.levels is not None:
        depth = min(depth, fuser.levels)
    blended = None
    for k in range(len(sources)):
        lap = pyramid.laplacian_pyramid(planes[k], depth)                     # 3 x h x w per level
        gauss = pyramid.gaussian_pyramid(weights[k][None], depth)
        part = [level * w for level, w in zip(lap, gauss)]
        blended = part if blended is None else [a + b for a, b in zip(blended, part)]
    return np.clip(pyramid.collapse(blended).transpose(1, 2, 0), 0.0, 1.0)


@pytest.mark.parametrize("count, levels", [(1, None), (2, None), (3, None), (2, 2), (4, 3)])
def test_exposure_blend_relative_to_the_last_source_is_the_textbook_blend(crops, count, levels):
    """The blend computed as I_ref + collapse(sum W_k L(I_k - I_ref)) (half the pyramid planes
    for a pair) is the textbook sum of weighted Laplacian pyramids up to float32 rounding."""
    sources = _sources(fc.Exposure, crops, count)
    fuser = fc.Exposure(levels=levels)
    fused = fuser.fuse(sources)
    expected = _textbook_exposure(fuser, sources)
    assert fused.shape == expected.shape and fused.dtype == np.float32
    assert float(np.abs(fused - expected).max()) < 2e-6
    if count == 1:
        np.testing.assert_array_equal(fused, np.clip(sources[0], 0, 1))


def test_exposure_reduce_and_expand_planes_are_the_pyramid_operators():
    """exposure's allocation-free REDUCE / EXPAND of one plane give pyramid's values bit for bit."""
    from fusekit_classic import exposure

    rng = np.random.default_rng(5)
    for h, w in [(4, 4), (5, 7), (9, 4), (37, 52), (64, 81)]:
        x = rng.random((h, w)).astype(np.float32) * np.float32(0.3)
        half = np.empty(((h + 1) // 2, w), np.float32)
        dst = np.empty(((h + 1) // 2, (w + 1) // 2), np.float32)
        got = exposure._reduce_plane(x, dst, half, np.empty(h * w, np.float32))
        np.testing.assert_array_equal(got, pyramid._reduce_axis(pyramid._reduce_axis(x, 0), 1))
        for shape in [(2 * h - 1, 2 * w - 1), (2 * h, 2 * w), (2 * h, 2 * w - 1)]:
            col = np.empty((h, shape[1]), np.float32)
            out = np.empty(shape, np.float32)
            got = exposure._expand_plane(x, shape, col, out, np.empty(2 * h * w, np.float32))
            expected = pyramid._expand_axis(pyramid._expand_axis(x, 1, shape[1]), 0, shape[0])
            np.testing.assert_array_equal(got, expected)
        stack = rng.random((3, 2, h, w)).astype(np.float32)     # stacks of planes: the same operators
        np.testing.assert_array_equal(exposure._reduce_stack(stack), pyramid.reduce(stack.reshape(6, h, w))
                                      .reshape(3, 2, (h + 1) // 2, (w + 1) // 2))
        np.testing.assert_array_equal(exposure._expand_stack(stack, (2 * h - 1, 2 * w)),
                                      pyramid.expand(stack.reshape(6, h, w), (2 * h - 1, 2 * w))
                                      .reshape(3, 2, 2 * h - 1, 2 * w))
    for h, w in [(1, 1), (2, 3), (3, 2), (1, 7)]:                  # thin stacks: pyramid's small path
        stack = rng.random((2, h, w)).astype(np.float32)
        np.testing.assert_array_equal(exposure._reduce_stack(stack), pyramid.reduce(stack))
        np.testing.assert_array_equal(exposure._expand_stack(stack, (2 * h, 2 * w)),
                                      pyramid.expand(stack, (2 * h, 2 * w)))
    one = rng.random((1, 1)).astype(np.float32)
    got = exposure._expand_plane(one, (2, 2), np.empty((1, 2), np.float32), np.empty((2, 2), np.float32),
                                 np.empty(2, np.float32))
    np.testing.assert_array_equal(got, np.full((2, 2), one[0, 0]))


def _threaded(monkeypatch, exposure, sources, **options):
    monkeypatch.setattr(exposure, "_THREAD_PIXELS", 0)
    try:
        return fc.Exposure(workers=2, **options).fuse(sources)
    finally:
        monkeypatch.setattr(exposure, "_THREAD_PIXELS", 10 ** 12)


def test_max_and_average_on_hand_values():
    a = np.array([[0.0, 0.5], [1.0, 0.25]], np.float32)
    b = np.array([[1.0, 0.25], [0.0, 0.75]], np.float32)
    np.testing.assert_array_equal(fc.Maximum().fuse([a, b]), [[1.0, 0.5], [1.0, 0.75]])
    np.testing.assert_allclose(fc.Average().fuse([a, b]), [[0.5, 0.375], [0.5, 0.5]])


def test_pca_weights_follow_variance():
    """The principal component weighs the high-variance source more; weights are convex."""
    rng = np.random.default_rng(4)
    base = rng.random((32, 32)).astype(np.float32)
    strong = base
    weak = (0.5 + 0.1 * (base - 0.5)).astype(np.float32)
    w = fc.PCA().weights([strong, weak])
    assert w[0] > 0.8 and np.isclose(w.sum(), 1.0) and (w >= 0).all()
    inverted = (1.0 - base).astype(np.float32)   # anti-correlated: weights stay convex
    w = fc.PCA().weights([base, inverted])
    assert np.isclose(w.sum(), 1.0) and (w >= 0).all()
    flat = np.full((8, 8), 0.3, np.float32)
    np.testing.assert_allclose(fc.PCA().weights([flat, flat]), [0.5, 0.5])


def test_laplacian_pyramid_keeps_strongest_detail():
    """An edge present in one source only survives at full contrast, not halved as by average."""
    a = np.full((64, 64), 0.5, np.float32)
    b = a.copy()
    b[:, 32:] = 0.9
    fused = fc.LaplacianPyramid(levels=3).fuse([a, b])
    step = fused[32, 36] - fused[32, 27]
    assert step > 0.3   # the average would give 0.2
    dwt_step = fc.DWT(levels=3).fuse([a, b])
    assert dwt_step[32, 36] - dwt_step[32, 27] > 0.25


def test_guided_filter_keeps_salient_details():
    """GFF takes textured content from the source where it is salient."""
    rng = np.random.default_rng(5)
    texture = ndimage.gaussian_filter(rng.random((80, 80)), 1).astype(np.float32)
    texture = (texture - texture.mean()) * 3 + 0.5
    a = np.full((80, 80), 0.5, np.float32)
    b = a.copy()
    a[:, :40] = texture[:, :40]
    b[:, 40:] = texture[:, 40:]
    target = np.clip(texture, 0, 1)
    fused = fc.GuidedFilter().fuse([np.clip(a, 0, 1), np.clip(b, 0, 1)])
    inner = (slice(8, -8), slice(8, -8))
    assert np.abs(fused - target)[inner].mean() < 0.5 * np.abs(fc.Average().fuse([a, b]) - target)[inner].mean()


# -- pyramid helpers -------------------------------------------------------

@pytest.mark.parametrize("shape", [(37, 50), (64, 48), (5, 3), (2, 2), (1, 7)])
def test_laplacian_pyramid_reconstructs_exactly(shape):
    image = np.random.default_rng(6).random((2,) + shape, dtype=np.float32)
    levels = pyramid.max_levels(*shape)
    pyr = pyramid.laplacian_pyramid(image, levels)
    assert len(pyr) == levels + 1
    np.testing.assert_allclose(pyramid.collapse(pyr), image, atol=1e-6)


def test_pyramid_preserves_constants_and_halves_size():
    flat = np.full((1, 33, 20, 3), 0.25, np.float32)
    small = pyramid.reduce(flat)
    assert small.shape == (1, 17, 10, 3)
    np.testing.assert_allclose(small, 0.25, atol=1e-7)
    np.testing.assert_allclose(pyramid.expand(small, (33, 20)), 0.25, atol=1e-7)


def test_pyramid_matches_opencv_pyrdown_pyrup():
    cv2 = pytest.importorskip("cv2")
    image = np.random.default_rng(7).random((37, 50), dtype=np.float32)
    small = pyramid.reduce(image[None])[0]
    np.testing.assert_allclose(small, cv2.pyrDown(image), atol=1e-6)
    np.testing.assert_allclose(pyramid.expand(small[None], image.shape)[0],
                               cv2.pyrUp(small, dstsize=image.shape[::-1]), atol=1e-6)


def test_exposure_laplacian_is_exactly_zero_on_flat_patches():
    from fusekit_classic.exposure import laplacian

    flat = np.full((1, 6, 6), 0.3534353, np.float32)
    assert not laplacian(flat).any()
    ramp = np.add.outer(np.arange(6.0), np.arange(6.0)).astype(np.float32)[None]
    np.testing.assert_array_equal(laplacian(ramp)[0, 1:-1, 1:-1], 0.0)


# -- bad input -------------------------------------------------------------

BAD_OPTIONS = [
    ("laplacian-pyramid", {"levels": 0}, "levels"),
    ("laplacian-pyramid", {"levels": 2.5}, "levels"),
    ("dwt", {"levels": 0}, "levels"),
    ("dwt", {"wavelet": "nope"}, "wavelet"),
    ("guided-filter", {"r1": -1}, "r1"),
    ("guided-filter", {"r2": 0}, "r2"),
    ("guided-filter", {"eps1": 0.0}, "eps1"),
    ("guided-filter", {"eps2": -1e-6}, "eps2"),
    ("guided-filter", {"base_size": 30}, "base_size"),
    ("guided-filter", {"saliency_sigma": float("nan")}, "saliency_sigma"),
    ("exposure", {"sigma": 0}, "sigma"),
    ("exposure", {"contrast_weight": -1}, "contrast_weight"),
    ("exposure", {"levels": 0}, "levels"),
    ("exposure", {"workers": 0}, "workers"),
    ("focus", {"measure": "variance"}, "measure"),
    ("focus", {"window": 4}, "window"),
    ("focus", {"window": True}, "window"),
    ("focus", {"consistency": -3}, "consistency"),
    ("focus", {"min_region": 1.0}, "min_region"),
    ("focus", {"blend_sigma": -0.5}, "blend_sigma"),
]


@pytest.mark.parametrize("name,options,param", BAD_OPTIONS,
                         ids=[f"{n}-{p}" for n, _, p in BAD_OPTIONS])
def test_bad_parameter_names_parameter_and_range(name, options, param):
    with pytest.raises(ParameterError) as info:
        fusekit.get_fuser(name, **options)
    message = str(info.value)
    assert param in message and name in message
    assert any(word in message for word in (">", "<", "[", "one of", "integer"))
    assert "\n" not in message


def test_unknown_option_is_rejected():
    with pytest.raises(ParameterError, match="levels"):
        fusekit.get_fuser("guided-filter", levels=3)


@pytest.mark.parametrize("name", NAMES)
def test_one_source_is_rejected(name, crops):
    cls = fc.METHODS[NAMES.index(name)]
    with pytest.raises(InputError, match="at least 2"):
        fusekit.fuse(_sources(cls, crops)[:1], method=name)


@pytest.mark.parametrize("shape", [(8, 8), (5, 7), (2, 2), (1, 1)])
@pytest.mark.parametrize("cls", fc.METHODS, ids=NAMES)
def test_tiny_images_work_or_fail_clearly(cls, shape):
    rng = np.random.default_rng(8)
    full = shape + ((3,) if cls.needs_color else ())
    sources = [rng.random(full, dtype=np.float32) for _ in range(2)]
    try:
        fused = cls().fuse(sources)
    except InputError as exc:
        assert cls is fc.DWT and min(shape) < 6, f"{cls.name} failed on {shape}: {exc}"
        assert "too small" in str(exc) and "haar" in str(exc)
        return
    assert fused.shape == full and fused.dtype == np.float32
    assert np.isfinite(fused).all() and 0 <= fused.min() and fused.max() <= 1
    np.testing.assert_allclose(cls().fuse([sources[0], sources[0]]), sources[0], atol=2e-6)


def test_dwt_small_image_with_haar_works():
    rng = np.random.default_rng(9)
    sources = [rng.random((3, 5), dtype=np.float32) for _ in range(2)]
    assert fc.DWT(wavelet="haar").fuse(sources).shape == (3, 5)


def test_wrong_shapes_called_directly_fail_clearly():
    a = np.zeros((8, 8), np.float32)
    with pytest.raises(InputError, match="one shape"):
        fc.LaplacianPyramid().fuse([a, np.zeros((8, 9), np.float32)])
    with pytest.raises(InputError, match="H x W x 3"):
        fc.Exposure().fuse([a, a])


# -- through the command line ----------------------------------------------

def _write_bracket(tmp_path, crops, count):
    from fusekit.io import write_image

    paths = []
    for k, image in enumerate(_sources(fc.Exposure, crops, count)):
        paths.append(write_image(tmp_path / f"src{k}.png", image))
    return paths


@pytest.mark.parametrize("method,count", [("exposure", 3), ("focus", 4), ("laplacian-pyramid", 4)])
def test_cli_fuses_n_sources(run_cli, tmp_path, crops, method, count):
    from fusekit.io import read_image

    paths = _write_bracket(tmp_path, crops, count)
    out = tmp_path / "fused.png"
    result = run_cli(["fuse", "-m", method, *paths, "-o", out])
    assert result.exit_code == 0, result.output
    fused = read_image(out)
    assert fused.shape == crops["colour"][0].shape


def test_cli_bad_parameter_is_one_clear_line(run_cli, tmp_path, crops):
    paths = _write_bracket(tmp_path, crops, 2)
    result = run_cli(["fuse", "-m", "laplacian-pyramid", "-p", "levels=0", *paths, "-o", tmp_path / "f.png"])
    assert result.exit_code != 0
    text = result.output.strip()
    assert "levels" in text and "[1, 30]" in text
    assert len(text.splitlines()) == 1
    assert not (tmp_path / "f.png").exists()


@pytest.mark.parametrize("shape", [(5, 4), (7, 9), (12, 13), (33, 64)])
def test_pyramid_passes_along_rows_equal_those_down_columns(shape):
    """REDUCE/EXPAND along the last axis (contiguous even/odd arrays) give the values of the same
    operations down the columns (strided), bit for bit."""
    from fusekit_classic.pyramid import _expand_axis, _reduce_axis

    rng = np.random.default_rng(sum(shape))
    x = rng.random(shape, dtype=np.float32)
    np.testing.assert_array_equal(_reduce_axis(x, 1), _reduce_axis(np.ascontiguousarray(x.T), 0).T)
    for n_out in (2 * shape[1], 2 * shape[1] - 1):
        np.testing.assert_array_equal(_expand_axis(x, 1, n_out),
                                      _expand_axis(np.ascontiguousarray(x.T), 0, n_out).T)
    stack = rng.random((3,) + shape, dtype=np.float32)
    np.testing.assert_array_equal(_reduce_axis(stack, 2)[1], _reduce_axis(stack[1], 1))


def test_exposure_pickles_without_its_threads_and_buffers(crops, monkeypatch):
    import pickle

    from fusekit_classic import exposure

    monkeypatch.setattr(exposure, "_THREAD_PIXELS", 0)
    sources = _sources(fc.Exposure, crops, 2)
    fuser = fc.Exposure(workers=2, sigma=0.3)
    first = fuser.fuse(sources)                          # starts its threads, fills its buffers
    copy = pickle.loads(pickle.dumps(fuser))
    assert copy.sigma == 0.3 and copy._pool is None and not copy._workspace.buffers
    np.testing.assert_array_equal(copy.fuse(sources), first)
