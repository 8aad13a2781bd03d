"""Shipped ReFusion weights keep the borders of real fused images free of stripes.

Issue 21, item 7: the MEIF weights, run as the plain zero-padded network,
print a row-to-row zigzag into the outer ~6 pixels of every fused image
(period-two stripes along all four borders, a dark last row). The cause is
in the weights: trained on small zero-padded patches with a zero-padded
Sobel loss, they react to the padding (the plain forward pass shows the same
stripes, at any tile size). :func:`fusekit_refusion.engine.infer` therefore runs the
network on sources mirrored by 13 pixels (its receptive field) and crops,
with the attention statistics of the unpadded image, so pixels more than 13
from the border are unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fusekit_refusion.engine import RECEPTIVE_RADIUS, infer, reflect_pad  # noqa: E402
from fusekit_refusion.fuser import ReFusion  # noqa: E402
from fusekit_refusion.network import ReFusionNet  # noqa: E402
from fusekit_refusion.weights import read_registry  # noqa: E402

from .conftest import require_data  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")

#: task -> (test folder, source-1 folder, source-2 folder, small pairs): the task's source order.
PAIRS = {
    "ivif": ("ivif/tno/test", "ir", "vi", ("07.png", "19.png")),
    "mif": ("mif/harvard_mri_ct/test", "ct", "mri", ("11.png", "12.png")),
    "mfif": ("mfif/mfifb/test", "a", "b", ("savic_01.jpg", "savic_02.jpg")),
    "meif": ("meif/mefb/test", "under", "over", ("Window2.jpg", "garage.jpg", "Door.jpg")),
}

#: Lines next to each border that are checked (the MEIF stripes reach ~6 pixels deep).
BAND = 6
#: A border's zigzag may be at most this many times the interior's (plus SLACK grey levels).
#: Measured: MEIF with the zero-padded forward 6.5-25x; every task with mirrored borders 2.6x at most.
FACTOR = 4.0
SLACK = 1.0

ENTRIES = read_registry()


def zigzag(lines: np.ndarray) -> np.ndarray:
    """Alternation between consecutive lines: ``min(|d_i|, |d_i+1|)`` where ``d_i`` and ``d_i+1`` change sign.

    Parameters
    ----------
    lines : ndarray
        ``L x W``, the image read line by line (rows, or columns transposed).

    Returns
    -------
    ndarray
        ``(L - 2) x W``; zero where the profile across the lines is monotone
        (edges, ramps), large for period-two stripes.
    """
    d = np.diff(lines.astype(np.float64), axis=0)
    a, b = d[:-1], d[1:]
    return np.where(a * b < 0, np.minimum(np.abs(a), np.abs(b)), 0.0)


def border_zigzag(image: np.ndarray, band: int = BAND, inset: int = 16) -> dict[str, float]:
    """Mean :func:`zigzag` in the ``band`` lines next to each border, and in the interior.

    Parameters
    ----------
    image : ndarray
        ``H x W`` grey image (any scale; grey levels 0-255 in the tests).
    band : int
        Lines checked next to each border.
    inset : int
        The interior starts this many pixels inside the image.

    Returns
    -------
    dict
        ``top``, ``bottom``, ``left``, ``right`` and ``interior`` mean zigzag.
    """
    out = {side: float(zigzag(lines)[:band].mean())
           for side, lines in (("top", image), ("bottom", image[::-1]), ("left", image.T), ("right", image.T[::-1]))}
    rows, cols = zigzag(image), zigzag(image.T)
    out["interior"] = 0.5 * float(rows[inset:-inset, inset:-inset].mean() + cols[inset:-inset, inset:-inset].mean())
    return out


def luma_pair(task: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The luminance of a real test pair of ``task``, float32 in [0, 1], in the task's order."""
    from fusekit.color import luminance
    from fusekit.io import read_image

    base, m1, m2, _ = PAIRS[task]
    out = []
    for modality in (m1, m2):
        path = require_data(base, modality, name)
        image = read_image(path)
        out.append(np.ascontiguousarray(luminance(image) if image.ndim == 3 else image, dtype=np.float32))
    return out[0], out[1]


def shipped_net(task: str) -> ReFusionNet:
    """The default shipped network of ``task``."""
    from fusekit_refusion.checkpoint import load_weights_file

    entry = next((e for e in ENTRIES if e.task == task), None)
    if entry is None:
        pytest.skip(f"no shipped weights for {task}")
    net = ReFusionNet()
    load_weights_file(net, entry.path)
    return net.eval()


@pytest.mark.parametrize("entry", ENTRIES, ids=[f"{e.task}-{e.variant}" for e in ENTRIES])
def test_shipped_weights_print_no_stripes_into_the_borders(entry):
    require_data()
    fuser = ReFusion(task=entry.task, weights=str(entry.path))
    for name in PAIRS[entry.task][3]:
        fused = 255 * fuser.fuse(list(luma_pair(entry.task, name)))
        z = border_zigzag(fused)
        limit = FACTOR * z["interior"] + SLACK
        bad = {side: round(v, 1) for side, v in z.items() if side != "interior" and v > limit}
        assert not bad, (f"{entry.path.name} on {entry.task} {name}: border zigzag {bad} grey levels, "
                         f"interior {z['interior']:.1f} (limit {limit:.1f})")


def test_mirrored_borders_leave_the_interior_equal_to_the_plain_forward():
    """Beyond the receptive field the result is the zero-padded network's, at any tile size."""
    net = shipped_net("meif")
    a, b = luma_pair("meif", "Door.jpg")
    x = torch.from_numpy(np.stack([a, b])[None, :, :120, :150].copy())
    with torch.no_grad():
        plain = net(x)
    r = RECEPTIVE_RADIUS
    for chunk in (10**7, 700):  # one tile, and many tiles (the rings' sums merged across tiles)
        out = infer(net, x, border=r, chunk_pixels=chunk)
        assert out.shape == plain.shape
        assert float((out - plain)[..., r:-r, r:-r].abs().max()) <= 1e-5
        assert float((out - plain)[..., :6, :].abs().max()) > 1e-2  # the border did change
    assert float((infer(net, x, border=0) - plain).abs().max()) <= 1e-5
    # a wider mirror changes nothing: no output pixel reaches the zero padding
    assert float((infer(net, x, border=r + 7) - infer(net, x, border=r)).abs().max()) <= 1e-5


def test_mirrored_borders_on_images_smaller_than_the_margin():
    net = shipped_net("meif")
    x = torch.rand(2, 2, 9, 5)
    out = infer(net, x, border=RECEPTIVE_RADIUS, chunk_pixels=16)
    assert out.shape == (2, 1, 9, 5)
    assert float((out - infer(net, x, border=RECEPTIVE_RADIUS)).abs().max()) <= 1e-5
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    with torch.no_grad():  # tiles narrower than their halo (a band's tiles must not read each other's writes)
        assert float((infer(net, x, chunk_pixels=16) - net(x)).abs().max()) <= 1e-5


def test_reflect_pad_mirrors_without_repeating_the_edge():
    x = torch.rand(2, 7, 9)
    ref = torch.nn.functional.pad(x[None], (4, 4, 4, 4), mode="reflect")[0]
    assert torch.equal(reflect_pad(x, 4), ref)
    assert torch.equal(reflect_pad(x, 0), x)
    small = reflect_pad(torch.tensor([[1.0, 2.0]]), 3)
    assert small.shape == (7, 8) and torch.equal(small[0], torch.tensor([2.0, 1, 2, 1, 2, 1, 2, 1]))


def test_bad_border_raises():
    with pytest.raises(ValueError, match="border"):
        infer(ReFusionNet(), torch.rand(1, 2, 8, 8), border=-1)
