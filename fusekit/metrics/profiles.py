"""Metric profiles: which conventions a set of numbers follows.

The same metric name gives different numbers in different evaluation scripts
(MI in bits or nats, SSIM windows and ranges, three PSNR formulas; see
``METRICS.md`` of the project notes). A profile fixes those conventions:

``standard`` (default)
    Textbook definitions: luminance Y (BT.601) on a 0-255 scale, not
    rounded except where a histogram needs 256 grey levels (EN, MI); MI in
    bits; SSIM with an 11 x 11 Gaussian window (sigma 1.5), L = 255,
    population covariance, valid region, summed over sources; PSNR =
    10 log10(255^2 / mean MSE); AG with forward differences over
    (M-1)(N-1) pixels; Q^{AB/F} as printed by Xydeas & Petrovic with
    mirrored borders.
``cddfuse``
    Reproduces ``utils/Evaluator.py`` of the CDDFuse repository
    (Zhao et al., CVPR 2023), which many later papers copy: images read as
    8-bit, converted to grey with OpenCV's float32 weights and rounded; MI in
    nats (scikit-learn's ``mutual_info_score``); SSIM with scikit-image 0.19
    defaults (7 x 7 uniform window, sample covariance, data_range 2 on 0-255
    data, computed in float32); AG with central differences averaged over all
    pixels; PSNR with peak max(F); Q^{AB/F} with zero-padded borders and the
    script's handling of equal gradient magnitudes.

``vifb``
    Reproduces the MATLAB metric code of the VIFB benchmark (Zhang, Ye &
    Xiao, CVPR Workshops 2020): its 13 metrics only (``ag ce ei en mi psnr
    qabf qcb qcv rmse sf ssim sd``), colour fused images scored per channel
    and averaged, 8-bit inputs, MI in nats, its PSNR and RMSE formulas; see
    :mod:`fusekit.metrics.vifb` for every convention.

``standard`` and ``cddfuse`` share EN, SD, SF, SCD, VIF, CC and N^{AB/F}. Where the script
returns NaN (a correlation with a constant image, 0/0), fusekit returns the
documented value instead (see :mod:`fusekit.metrics.correlation`).
"""

from __future__ import annotations

import collections.abc as _abc
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping

import numpy as np

from ..errors import InputError, UnknownNameError

if TYPE_CHECKING:  # pragma: no cover
    from .base import Metric, MetricContext


#: Accepted values of the string conventions of a :class:`Profile`.
CHOICES: dict[str, tuple[str, ...]] = {
    "ssim_variant": ("wang", "skimage-0.19"),
    "qabf_variant": ("paper", "script"),
    "psnr_peak": ("255", "max-fused"),
    "ag_differences": ("forward", "central"),
    "grey": ("bt601", "opencv-float32-rounded", "levels-8bit", "pil-l"),
}

#: Float pixels may overshoot the declared range by this fraction of it (float32 rounding).
_RANGE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Profile:
    """A named set of metric conventions, as data: metrics read the fields, never the name.

    Attributes
    ----------
    name : str
        Key used by ``--profile``.
    summary : str
        One line shown in reports.
    reference : str
        Where the conventions come from.
    mi_log_base : float
        Log base of MI: 2 (bits) or e (nats).
    ssim_variant : {"wang", "skimage-0.19"}
        Wang et al.'s reference SSIM, or scikit-image 0.19's defaults as
        CDDFuse's script calls them (:mod:`fusekit.metrics.structural`).
    qabf_variant : {"paper", "script"}
        Q^{AB/F} as printed, or with the script's zero padding and quirks
        (:mod:`fusekit.metrics.edges`).
    psnr_peak : {"255", "max-fused"}
        PSNR's peak: 255, or the fused image's maximum.
    ag_differences : {"forward", "central"}
        AG from forward differences over (M-1)(N-1) pixels, or central
        differences (``np.gradient``) over all pixels.
    grey : {"bt601", "opencv-float32-rounded", "levels-8bit", "pil-l"}
        How :meth:`prepare` turns pixels into what the metrics see: BT.601
        luminance, not rounded; OpenCV's ``cvtColor(BGR2GRAY)`` in float32,
        rounded (CDDFuse); 8-bit levels with colour kept (VIFB); Pillow's
        ``convert("L")`` in fixed point, 8-bit (IVIF_ZOO).
    implementations : mapping of str to callable
        Metric functions that replace the built-in ones under this profile
        (``{"ssim": f}``); metrics not named use their own function.
    exclusive : bool
        The profile defines only the metrics in ``implementations``
        (``vifb``: VIFB's 13); asking for another is an error that names
        the profiles that define it.
    conventions : mapping of str to mapping of str to str
        Per metric, the conventions that change its number (log base,
        window, data range, sources, colour, border rule, code reproduced);
        read by :mod:`fusekit.metrics.conventions`.
    inputs : str
        One line on how input pixels are read, shown in reports.
    """

    name: str
    summary: str
    reference: str
    mi_log_base: float = 2.0
    ssim_variant: str = "wang"
    qabf_variant: str = "paper"
    psnr_peak: str = "255"
    ag_differences: str = "forward"
    grey: str = "bt601"
    implementations: Mapping[str, Callable[["MetricContext"], float]] = field(default_factory=dict, repr=False,
                                                                              compare=False)
    exclusive: bool = False
    conventions: Mapping[str, Mapping[str, str]] = field(default_factory=dict, repr=False, compare=False)
    inputs: str = "luminance (Y of BT.601 YCbCr), 0-255 scale"

    def __post_init__(self) -> None:
        for field_name, allowed in CHOICES.items():
            if getattr(self, field_name) not in allowed:
                raise InputError(f"profile {self.name!r}: {field_name} must be one of {', '.join(allowed)}, "
                                 f"got {getattr(self, field_name)!r}")
        if not self.mi_log_base > 1:
            raise InputError(f"profile {self.name!r}: mi_log_base must be > 1, got {self.mi_log_base}")

    def prepare(self, image: np.ndarray, data_range: float | None = None) -> np.ndarray:
        """Turn an image into the luminance array the metrics of this profile expect.

        Parameters
        ----------
        image : ndarray, shape (H, W) or (H, W, 3)
            Grey or RGB. uint8 (0-255) and uint16 (0-65535) by their type;
            floats in [0, 1], fusekit's own convention (what
            :func:`fusekit.io.read_image` and :func:`fusekit.fuse` return);
            other integer types on a 0-255 scale.
        data_range : float, optional
            Full scale of float or non-uint8/uint16 integer input, e.g. 255
            for floats on a 0-255 scale. Ignored for uint8 and uint16.

        Returns
        -------
        ndarray, shape (H, W), float64
            Luminance on a 0-255 scale.

        Raises
        ------
        InputError
            Pixels outside ``[0, data_range]`` (never silently rescaled), a
            bad shape or dtype, or non-finite values.
        """
        arr = np.asarray(image)
        if arr.ndim == 3 and arr.shape[2] == 4:
            arr = arr[..., :3]
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
            raise InputError(f"expected an H x W or H x W x 3 image, got shape {arr.shape}")
        if arr.size == 0:
            raise InputError("empty image; pass an image of at least 1 x 1 pixels")
        if arr.dtype == np.uint8 or arr.dtype == bool:
            scale = 1.0
        elif arr.dtype == np.uint16:
            scale = 255.0 / 65535.0
        elif arr.dtype.kind in "fiu":
            scale = 255.0 / _checked_range(arr, data_range)
        else:
            raise InputError(f"unsupported image dtype {arr.dtype}; use uint8, uint16 or float")
        return self._grey(arr.astype(np.float64) * scale if scale != 1.0 else arr.astype(np.float64))

    def defines(self, name: str) -> bool:
        """Whether this profile gives metric ``name`` a meaning (all, unless :attr:`exclusive`)."""
        return not self.exclusive or name in self.implementations

    def function_for(self, metric: "Metric") -> Callable[["MetricContext"], float]:
        """The function that computes ``metric`` under this profile.

        Raises
        ------
        InputError
            The profile does not define the metric; the message names the
            profiles that do.
        """
        if not self.defines(metric.name):
            raise InputError(_undefined_message(metric.name, self))
        return self.implementations.get(metric.name, metric.function)

    def _grey(self, arr: np.ndarray) -> np.ndarray:
        return _GREY[self.grey](arr)


def _grey_bt601(arr: np.ndarray) -> np.ndarray:
    from .. import color

    if arr.ndim == 3:
        return color.luminance(arr / 255.0).astype(np.float64) * 255.0
    return arr


def _grey_opencv(arr: np.ndarray) -> np.ndarray:
    """Grey as CDDFuse's evaluation programs read images."""
    # cv2.imread gives 8-bit BGR; the script casts to float32, calls
    # cvtColor(BGR2GRAY) and rounds. OpenCV's float32 kernel computes
    # t = G * 0.587f; t = fma(B, 0.114f, t); t = fma(R, 0.299f, t), each
    # step rounded to float32 (checked bit for bit against OpenCV on all
    # 2^24 8-bit colours). The products of 8-bit values and float32
    # coefficients and their sums are exact in float64, so rounding the
    # float64 sum to float32 reproduces each fused multiply-add.
    if arr.ndim == 3:
        rgb = np.rint(arr)
        cr, cg, cb = (float(np.float32(c)) for c in (0.299, 0.587, 0.114))
        t = (rgb[..., 1] * cg).astype(np.float32)
        t = (rgb[..., 2] * cb + t).astype(np.float32)
        grey = (rgb[..., 0] * cr + t).astype(np.float32)
    else:
        grey = arr.astype(np.float32)
    return np.rint(grey).astype(np.float64)


def _levels_8bit(arr: np.ndarray) -> np.ndarray:
    """8-bit levels, colour kept: integers 0..255 rounded half away from zero, as MATLAB stores them."""
    from .perceptual import round_half_away

    return np.clip(round_half_away(arr), 0.0, 255.0)


def _grey_pil(arr: np.ndarray) -> np.ndarray:
    """Pillow's ``Image.convert("L")``: (19595 R + 38470 G + 7471 B + 2^15) >> 16 on 8-bit values."""
    levels = _levels_8bit(arr).astype(np.int64)
    if levels.ndim == 3:
        levels = (levels[..., 0] * 19595 + levels[..., 1] * 38470 + levels[..., 2] * 7471 + 0x8000) >> 16
    return levels.astype(np.float64)


_GREY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "bt601": _grey_bt601, "opencv-float32-rounded": _grey_opencv, "levels-8bit": _levels_8bit,
    "pil-l": _grey_pil,
}


def _checked_range(arr: np.ndarray, data_range: float | None) -> float:
    """The full scale of a float or integer image, after checking its pixels lie within it."""
    is_float = arr.dtype.kind == "f"
    if is_float and not np.isfinite(arr).all():
        raise InputError("image holds NaN or infinite values; metrics need finite pixels")
    full = (1.0 if is_float else 255.0) if data_range is None else float(data_range)
    if not full > 0:
        raise InputError(f"data_range must be positive, got {data_range}")
    lo, hi = float(arr.min()), float(arr.max())
    slack = _RANGE_TOLERANCE * full if is_float else 0.0
    if lo < -slack or hi > full + slack:
        kind = "float" if is_float else f"{arr.dtype} integer"
        if data_range is not None:
            fix = "give the data_range the image uses"
        elif is_float:
            fix = "float images are read as [0, 1]; pass data_range=255 for a 0-255 scale"
        else:
            fix = f"{arr.dtype} images are read as 0-255; pass data_range for another scale"
        raise InputError(f"{kind} image has values {lo:g}..{hi:g}, outside 0..{full:g}; {fix} "
                         "(or pass uint8/uint16 arrays)")
    return full


def _undefined_message(name: str, profile: Profile) -> str:
    others = [p.name for p in PROFILES.values() if p.name != profile.name and p.defines(name)]
    where = f"profiles that define it: {', '.join(others)}" if others else "no profile defines it"
    return f"metric {name!r} is not part of profile {profile.name!r}; {where}"




class _ConventionTable(_abc.Mapping):
    """A table of :mod:`fusekit.metrics.conventions`, imported on first use.

    The tables are only read by ``--list-metrics``, the HTML report and the
    documentation; importing them (about 4 ms of CPU: some 200 formatted
    strings) is left out of a plain ``fusekit eval``.

    Parameters
    ----------
    attribute : str
        Name of the table in :mod:`fusekit.metrics.conventions`
        (``"STANDARD_TABLE"``, ...).
    """

    def __init__(self, attribute: str) -> None:
        self._attribute = attribute

    def _table(self) -> Mapping[str, Mapping[str, str]]:
        from . import conventions  # tables of plain data; imports nothing back at import time

        return getattr(conventions, self._attribute)

    def __getitem__(self, key: str) -> Mapping[str, str]:
        return self._table()[key]

    def __iter__(self):
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

    def __repr__(self) -> str:
        return f"_ConventionTable({self._attribute!r})"


from .ivif_zoo import IMPLEMENTATIONS as _IVIF_ZOO_IMPLEMENTATIONS  # noqa: E402
from .vifb import IMPLEMENTATIONS as _VIFB_IMPLEMENTATIONS  # noqa: E402

STANDARD = Profile(
    name="standard",
    conventions=_ConventionTable("STANDARD_TABLE"),
    summary="textbook definitions; luminance Y (BT.601), 0-255; MI in bits; "
            "SSIM 11x11 Gaussian, L=255, summed over sources",
    reference="definitions from the papers cited by each metric",
)

CDDFUSE = Profile(
    name="cddfuse",
    grey="opencv-float32-rounded",
    conventions=_ConventionTable("CDDFUSE_TABLE"),
    mi_log_base=math.e,
    ssim_variant="skimage-0.19",
    qabf_variant="script",
    psnr_peak="max-fused",
    ag_differences="central",
    summary="reproduces CDDFuse utils/Evaluator.py: grey rounded inputs, MI in nats, "
            "skimage-0.19 SSIM (7x7 uniform, data_range 2), PSNR peak max(F)",
    reference="Zhao et al., CDDFuse, CVPR 2023; github.com/Zhaozixiang1228/MMIF-CDDFuse "
              "utils/Evaluator.py (commit fd8da1f)",
)

VIFB = Profile(  # its own metric code (vifb.py) reads none of the convention fields
    name="vifb",
    grey="levels-8bit",
    implementations=_VIFB_IMPLEMENTATIONS,
    exclusive=True,
    conventions=_ConventionTable("VIFB_TABLE"),
    inputs="8-bit levels, colour kept (per channel, as VIFB)",
    mi_log_base=math.e,
    summary="reproduces VIFB's MATLAB metrics: its 13 metrics, colour per channel and averaged, "
            "8-bit inputs, MI in nats, its PSNR/RMSE/SF/AG formulas",
    reference="Zhang, Ye & Xiao, VIFB, CVPR Workshops 2020; github.com/xingchenzhang/VIFB "
              "metrics/ (commit 22b2ea9)",
)

IVIF_ZOO = Profile(
    name="ivif_zoo",
    grey="pil-l",
    implementations=_IVIF_ZOO_IMPLEMENTATIONS,
    exclusive=True,
    conventions=_ConventionTable("IVIF_ZOO_TABLE"),
    inputs="8-bit grey by Pillow convert('L'), 0-255 scale",
    summary="reproduces IVIF_ZOO's Python SSIM (L=1), PSNR (+48 dB), VIF (off-centre windows, "
            "zero padding) and Nabf (arctan(gx/gy)); those 4 metrics only",
    reference="Liu et al., IVIF survey, IEEE TPAMI 2025; github.com/RollingPlain/IVIF_ZOO Metric/ "
              "(commit 61b0a44)",
)

#: Profiles by name.
PROFILES: dict[str, Profile] = {p.name: p for p in (STANDARD, CDDFUSE, VIFB, IVIF_ZOO)}


def get_profile(profile: str | Profile) -> Profile:
    """The :class:`Profile` called ``profile`` (a Profile passes through).

    Raises
    ------
    UnknownNameError
        No such profile; the message suggests close names.
    """
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise UnknownNameError("profile", str(profile), PROFILES) from None
