"""The conventions each profile uses for each metric, as data.

The same metric name means different code in different evaluation scripts.
This module states, per profile and metric, the choices that change the
number: log base, window, data range, how the sources are combined, colour
handling and the border rule, plus the reference implementation the profile
reproduces. It is the one source of truth for ``fusekit eval
--list-metrics --profile P`` (:func:`format_conventions`), for the
conventions section of the HTML report and for the documentation page
``docs/metric_conventions.md`` (:func:`conventions_markdown`; regenerate
it with ``python -m fusekit.metrics.conventions docs/metric_conventions.md``).
A test checks that the page, the command and the data agree.

The entries restate what the implementations do (see each metric's module
docstring); when an implementation changes, its entry here changes with it.

Examples
--------
>>> from fusekit.metrics.conventions import convention
>>> convention("cddfuse", "mi")["log"]
'ln (nats; scikit-learn mutual_info_score)'
"""

from __future__ import annotations

import sys
from typing import Iterable

#: The aspects every entry states, in display order: key and column title.
ASPECTS: tuple[tuple[str, str], ...] = (
    ("log", "log base"),
    ("window", "window"),
    ("range", "data range"),
    ("sources", "over sources"),
    ("colour", "colour"),
    ("border", "border rule"),
    ("code", "reproduces"),
)

#: Shown where an aspect does not apply to a metric.
NOT_APPLICABLE = "-"

_HIST = "256 levels (rounded half to even, clipped to 0-255)"
_STRETCH = "each image min-max stretched to 0-255, rounded half away from 0 (Liu's normalize1)"
_NONE = NOT_APPLICABLE

_FMI_WINDOW = ("3x3 windows, each min-max scaled and read as a 9-point distribution (column-major); "
               "Nelsen joint estimate between the Frechet bounds and independence")
_FMI_RANGE = "0-255, per-window min-max scaling (scale-free)"
_FMI_SOURCES = "mean over sources of FMI(S,F), then over windows; identical raw windows count 1"
_FMI_BORDER = "valid windows (no padding)"
_FMI_CODE = ("Haghighat's fmi.m (fast FMI), except that each source meets the raw fused window "
             "(fmi.m hands the second source the first one's scaled copy)")

# -- standard: the textbook definitions --------------------------------------------------------

_STANDARD_COLOUR = "luminance Y of full-range BT.601, not rounded"

_STANDARD: dict[str, dict[str, str]] = {
    "en": dict(log="log2 (bits)", window="whole image, 256-bin histogram", range=_HIST,
               sources="F only", border=_NONE, code="Shannon's definition"),
    "sd": dict(log=_NONE, window="whole image; population std (ddof 0)", range="0-255, not rounded",
               sources="F only", border=_NONE, code="textbook"),
    "sf": dict(log=_NONE, window="adjacent-pixel differences; RF^2 over M(N-1), CF^2 over (M-1)N pairs",
               range="0-255", sources="F only", border="no padding (differences inside the image)",
               code="Eskicioglu & Fisher's definition"),
    "ag": dict(log=_NONE, window="forward differences, sqrt((dx^2 + dy^2)/2)", range="0-255",
               sources="F only", border="(M-1)(N-1) pixels that have a right and a lower neighbour",
               code="Cui et al.'s definition"),
    "mi": dict(log="log2 (bits)", window="256 x 256 joint histogram, whole image", range=_HIST,
               sources="sum: I(F;A) + I(F;B)", border=_NONE, code="Qu et al.'s definition"),
    "scd": dict(log=_NONE, window="whole image (Pearson correlation)", range="0-255",
                sources="sum: r(F-B, A) + r(F-A, B); 2 sources", border=_NONE,
                code="Aslantas & Bendes; a constant image counts r = 0"),
    "vif": dict(log="ln (cancels in the ratio)",
                window="4 scales, Gaussian 17/9/5/3 taps, sigma N/5, sigma_n^2 = 2, down-sampling by 2",
                range="0-255", sources="sum: VIFp(A,F) + VIFp(B,F)",
                border="valid filtering (no padding)", code="Sheikh's pixel-domain VIF (the Python port)"),
    "qabf": dict(log=_NONE, window="3x3 Sobel; Tg 0.9994, kg -15, Dg 0.5, Ta 0.9879, ka -22, Da 0.8; "
                                   "G = 1 where g_S = g_F; angle sign(gy) pi/2 where gx = 0",
                 range="0-255", sources="edge-strength-weighted over A and B; 2 sources",
                 border="mirrored (reflect, edge pixel not repeated)", code="Xydeas & Petrovic's paper"),
    "ssim": dict(log=_NONE, window="11x11 Gaussian (sigma 1.5), population covariance, K1 0.01, K2 0.03",
                 range="L = 255", sources="sum: SSIM(F,A) + SSIM(F,B)",
                 border="valid region (window inside the image)", code="Wang et al.'s reference code"),
    "psnr": dict(log="log10 (dB)", window="whole image", range="peak 255",
                 sources="MSE averaged over sources, then 10 log10(255^2 / MSE)", border=_NONE,
                 code="textbook"),
    "cc": dict(log=_NONE, window="whole image (Pearson correlation)", range="0-255",
               sources="mean: (r(A,F) + r(B,F)) / 2", border=_NONE,
               code="textbook; a constant image counts r = 0"),
    "nabf": dict(log=_NONE, window="3x3 Sobel / 8; Td 2, Lg 1.5, Nrg 0.9999, kg 19, Nra 0.9995, ka 22",
                 range="0-255", sources="weighted over A and B where F's edge beats both; 2 sources",
                 border="mirrored (reflect)", code="Shreyamsha Kumar's modified N^{AB/F}"),
    "ce": dict(log="log2 (bits)", window="whole image, 256-bin histograms", range=_HIST,
               sources="mean: (CE(A,F) + CE(B,F)) / 2; levels empty in either image skipped",
               border=_NONE, code="VIFB metricsCross_entropy.m"),
    "ei": dict(log=_NONE, window="3x3 Sobel (not / 8), mean magnitude", range="0-255", sources="F only",
               border="replicated edge pixels", code="VIFB metricsEdge_intensity.m"),
    "rmse": dict(log=_NONE, window="whole image", range="0-255",
                 sources="mean of sqrt(mean((F - S)^2)) over sources", border=_NONE, code="textbook"),
    "qcb": dict(log=_NONE, window="DoG CSF in the frequency domain; local contrast from 31x31 Gaussians "
                                  "(sigma 2 and 4)",
                range=_STRETCH, sources="saliency-weighted over A and B; 2 sources",
                border="FFT (periodic) for the CSF, zero padding for the Gaussians",
                code="Liu's metricChenBlum.m; 0/0 defined (contrast 0)"),
    "qcv": dict(log=_NONE, window="CSF filter; 16x16 blocks; saliency sum of Sobel magnitude^5",
                range=_STRETCH, sources="saliency-weighted over A and B; 2 sources",
                border="zero-padded Sobel; partial blocks padded with zeros (blkproc)",
                code="Liu's metricChen.m; 0/0 defined"),
    "nmi": dict(log="any (ratios of entropies)", window="256 x 256 joint histogram, whole image",
                range=_STRETCH, sources="2 (I(A;F)/(H(A)+H(F)) + I(B;F)/(H(B)+H(F)))", border=_NONE,
                code="Liu's metricMI.m"),
    "te": dict(log="none (Tsallis, q = 1.85)", window="256 x 256 joint histogram, whole image",
               range=_STRETCH, sources="sum: I_q(A;F) + I_q(B;F)", border=_NONE,
               code="Cvejic et al.'s paper (Liu's tsallis.m transposes the marginals)"),
    "qncie": dict(log="log base 256", window="joint histograms of the 3 pairs, 3x3 NCC matrix",
                  range=_STRETCH, sources="A, B and F jointly; 2 sources", border=_NONE,
                  code="Liu's metricWang.m"),
    "qy": dict(log=_NONE, window="7x7 Gaussian (sigma 1.5), C1 = C2 = 2e-16",
               range="0-255 (no range constant)",
               sources="variance-weighted SSIM(A,F), SSIM(B,F) where SSIM(A,B) >= 0.75, else the max; "
                       "2 sources",
               border="valid region", code="Liu's metricYang.m"),
    "ms-ssim": dict(log=_NONE, window="11x11 Gaussian (sigma 1.5), K1 0.01, K2 0.03; 5 scales, 2x2 mean and "
                                      "every 2nd pixel between them; exponents 0.0448 0.2856 0.3001 0.2363 0.1333",
                    range="L = 255", sources="sum: MS-SSIM(A,F) + MS-SSIM(B,F)",
                    border="valid region; images >= 161 px a side; scale means < 0 clipped to 0",
                    code="Wang's msssim.m"),
    "mef-ssim": dict(log=_NONE, window="11x11 patches (uniform mean, contrast, structure); 11x11 Gaussian "
                                       "(sigma 1.5) SSIM without luminance, C2 = (0.03 x 255)^2; 3 scales",
                     range="0-255", sources="all sources at once: best contrast, consistency-weighted structure",
                     border="valid region; images >= 41 px a side", code="Ma's mef_ssim.m (as MEFB calls it)"),
    "fmi-pixel": dict(log="log2 (normalised: 2 I / (H_S + H_F))", window=_FMI_WINDOW, range=_FMI_RANGE,
                      sources=_FMI_SOURCES, border=_FMI_BORDER, code=_FMI_CODE),
    "fmi-w": dict(log="log2 (normalised: 2 I / (H_S + H_F))",
                  window="one-level discrete Meyer DWT (PyWavelets dmey, 62 taps; MATLAB's has 102), "
                         "[cA cH; cV cD] scaled to 0-1; then " + _FMI_WINDOW,
                  range=_FMI_RANGE, sources=_FMI_SOURCES,
                  border="half-sample symmetric extension for the DWT; valid windows", code=_FMI_CODE),
    "fmi-dct": dict(log="log2 (normalised: 2 I / (H_S + H_F))",
                    window="whole-image orthonormal 2-D DCT-II (MATLAB dct2); then " + _FMI_WINDOW,
                    range=_FMI_RANGE, sources=_FMI_SOURCES, border=_FMI_BORDER, code=_FMI_CODE),
}

# -- cddfuse: CDDFuse's utils/Evaluator.py -----------------------------------------------------

_CDDFUSE_COLOUR = "grey by OpenCV cvtColor(BGR2GRAY) in float32, rounded to integers"

#: CDDFuse's ``Evaluator`` function behind each key (metrics the script lacks are absent).
_CDDFUSE_FUNCTIONS = {"en": "EN", "sd": "SD", "sf": "SF", "ag": "AG", "mi": "MI", "scd": "SCD",
                      "vif": "VIFF", "qabf": "Qabf", "ssim": "SSIM", "psnr": "PSNR", "cc": "CC",
                      "nabf": "Nabf"}

_CDDFUSE: dict[str, dict[str, str]] = {
    "mi": dict(log="ln (nats; scikit-learn mutual_info_score)"),
    "ag": dict(window="central differences (np.gradient), sqrt((gx^2 + gy^2)/2)",
               border="one-sided differences at the border; mean over all M N pixels"),
    "ssim": dict(window="7x7 uniform, sample covariance (49/48), float32 (scikit-image 0.19 defaults)",
                 range="data_range 2 (scikit-image 0.19 default for float input)",
                 border="mirrored padding, 3-pixel border left out of the mean"),
    "psnr": dict(range="peak max(F)", sources="MSE averaged over sources, then 10 log10(max(F)^2 / MSE)"),
    "qabf": dict(window="3x3 Sobel; same constants; G = g_F where g_S = g_F; angle pi/2 wherever gx = 0; "
                        "float32",
                 border="zero padding"),
}

# -- vifb: VIFB's MATLAB metrics ---------------------------------------------------------------

_V8 = "8-bit integers 0-255 (as MATLAB imread gives them)"
_PER_F = "per channel of a colour F, averaged"
_PER_ROUNDED = ("per channel, averaged; a grey F takes colour sources through MATLAB rgb2gray, "
                "rounded to 8 bits")
_PER_DOUBLE = ("per channel, averaged; a grey F takes colour sources through MATLAB rgb2gray, "
               "not rounded")
_PER_FAIL = "per channel, averaged; a grey F with a colour source fails (as in MATLAB)"

_VIFB: dict[str, dict[str, str]] = {
    "ag": dict(log=_NONE, window="central differences (MATLAB gradient), sqrt((gx^2 + gy^2)/2)", range=_V8,
               sources="F only", colour=_PER_F,
               border="one-sided at the border; summed over M N pixels, divided by (M-1)(N-1)",
               code="VIFB metricsAvg_gradient.m"),
    "ce": dict(log="log2 (bits)", window="whole image, 256-bin histograms", range=_V8,
               sources="mean: (CE(VI,F) + CE(IR,F)) / 2; levels empty in either image skipped",
               colour=_PER_ROUNDED, border=_NONE, code="VIFB metricsCross_entropy.m"),
    "ei": dict(log=_NONE, window="3x3 Sobel (not / 8), mean magnitude", range=_V8, sources="F only",
               colour=_PER_F, border="replicated edge pixels", code="VIFB metricsEdge_intensity.m"),
    "en": dict(log="log2 (bits)", window="whole image, 256-bin histogram", range=_V8, sources="F only",
               colour=_PER_F, border=_NONE, code="VIFB metricsEntropy.m"),
    "mi": dict(log="ln (nats)", window="256 x 256 joint histogram, whole image",
               range="each image min-max stretched to 0-255, rounded half away from 0",
               sources="sum: MI(VI,F) + MI(IR,F)", colour=_PER_ROUNDED, border=_NONE,
               code="VIFB metricsMutinf.m"),
    "psnr": dict(log="log10 (dB)", window="whole image",
                 range="peak 255; 'MSE' is sqrt(sum (S-F)^2) / (M N)",
                 sources="that value averaged over sources, then 20 log10(255 / sqrt(m))",
                 colour=_PER_DOUBLE, border=_NONE, code="VIFB metricsPsnr.m"),
    "qabf": dict(log=_NONE, window="3x3 Sobel; G = g_F where g_S = g_F; angle pi/2 wherever gx = 0; float64",
                 range=_V8, sources="edge-strength-weighted over VI and IR", colour=_PER_DOUBLE,
                 border="zero padding", code="VIFB metricsQabf.m"),
    "qcb": dict(log=_NONE, window="as standard (Liu's code)", range=_STRETCH,
                sources="saliency-weighted over VI and IR", colour=_PER_FAIL,
                border="FFT (periodic) for the CSF, zero padding for the Gaussians",
                code="VIFB metricsQcb.m (Liu's); NaN kept, the image left out as nanmean does"),
    "qcv": dict(log=_NONE, window="as standard (Liu's code)", range=_STRETCH,
                sources="saliency-weighted over VI and IR", colour=_PER_FAIL,
                border="zero-padded Sobel; partial blocks padded with zeros (blkproc)",
                code="VIFB metricsQcv.m (Liu's); NaN kept, the image left out as nanmean does"),
    "rmse": dict(log=_NONE, window="whole image", range="sqrt(sum (S-F)^2) / (M N), i.e. RMSE / sqrt(M N)",
                 sources="mean over VI and IR", colour=_PER_DOUBLE, border=_NONE,
                 code="VIFB metricsRmse.m"),
    "sf": dict(log=_NONE, window="adjacent-pixel differences; both sums divided by M N", range=_V8,
               sources="F only", colour="a colour F is read as one M x 3W image (channels side by side)",
               border="no padding (differences inside the image, across the channel seams too)",
               code="VIFB metricsSpatial_frequency.m"),
    "ssim": dict(log=_NONE, window="11x11 Gaussian (sigma 1.5), population covariance, K1 0.01, K2 0.03",
                 range="L = 255", sources="sum: SSIM(VI,F) + SSIM(IR,F)", colour=_PER_ROUNDED,
                 border="valid region", code="VIFB metricsSsim.m"),
    "sd": dict(log=_NONE, window="whole image; population std", range=_V8, sources="F only",
               colour=_PER_F, border=_NONE, code="VIFB metricsVariance.m (returns the std)"),
}

def _cddfuse_entry(metric: str) -> dict[str, str]:
    function = _CDDFUSE_FUNCTIONS.get(metric)
    return dict(_STANDARD[metric], **_CDDFUSE.get(metric, {}), colour=_CDDFUSE_COLOUR,
                code=(f"CDDFuse utils/Evaluator.py Evaluator.{function}" if function else
                      "not in the script: fusekit's standard definition on its grey inputs"))


#: Full per-metric tables that the profiles carry (:attr:`fusekit.metrics.Profile.conventions`).
STANDARD_TABLE: dict[str, dict[str, str]] = {k: dict(v, colour=_STANDARD_COLOUR) for k, v in _STANDARD.items()}
CDDFUSE_TABLE: dict[str, dict[str, str]] = {k: _cddfuse_entry(k) for k in _STANDARD}
VIFB_TABLE: dict[str, dict[str, str]] = {k: dict(v) for k, v in _VIFB.items()}

_IZ_COLOUR = "grey by Pillow convert('L') (fixed point, 8-bit)"
_IZ_CODE = "IVIF_ZOO Metric/"

#: RollingPlain/IVIF_ZOO's ``Metric/`` (the four metrics the ``ivif_zoo`` profile reproduces).
IVIF_ZOO_TABLE: dict[str, dict[str, str]] = {
    "ssim": dict(log=_NONE, window="11x11 Gaussian (sigma 1.5, separable), population covariance, K1 0.01, K2 0.03",
                 range="L = 1 on 0-255 data (images x 255 by to_tensor, then data_range 255)",
                 sources="sum: SSIM(IR,F) + SSIM(VI,F)", colour=_IZ_COLOUR, border="valid region",
                 code=_IZ_CODE + "ssim.py ssim (float32)"),
    "psnr": dict(log="log10 (dB)", window="whole image", range="MSE of images / 255, peak 255 (+48.13 dB)",
                 sources="MSE averaged over sources, then 20 log10(255 / sqrt(MSE))", colour=_IZ_COLOUR,
                 border=_NONE, code=_IZ_CODE + "Metric_torch.py PSNR_function (float32)"),
    "vif": dict(log="log10 (cancels in the ratio)",
                window="4 scales, 17/9/5/3-sample Gaussians on linspace(-N//2, N//2, N) (off-centre, spacing "
                       "N/(N-1)), sigma N/5, sigma_n^2 = 2, down-sampling by 2",
                range="0-255", sources="sum: VIFp(IR,F) + VIFp(VI,F)", colour=_IZ_COLOUR,
                border="zero padding to the input size ('same')",
                code=_IZ_CODE + "Metric_torch.py vifp_mscale (float32)"),
    "nabf": dict(log=_NONE, window="3x3 Sobel / 8; Td 2, Lg 1.5, Nrg 0.9999, kg 19, Nra 0.9995, ka 22; "
                                   "angle arctan(gx / gy); weight 0 (not wt_min) below Td",
                 range="0-255", sources="weighted over IR and VI where F's edge beats both; 2 sources",
                 colour=_IZ_COLOUR, border="mirrored (reflect)", code=_IZ_CODE + "Nabf.py get_Nabf"),
}

#: Differences between public scripts that fusekit found by reading them.
SCRIPT_DIFFERENCES: tuple[tuple[str, str], ...] = (
    ("MI units",
     "CDDFuse's Evaluator.py (scikit-learn mutual_info_score) and VIFB's metricsMutinf.m give nats, "
     "MATLAB toolkits that use log2 give bits: nats = ln 2 x bits = 0.693 x bits, so the same "
     "images give 1.443 x the number in bits."),
    ("MI quantisation",
     "VIFB stretches each image to 0-255 (min-max) before the joint histogram; CDDFuse and the "
     "textbook bin the grey levels as they are. The two differ for images that do not span 0-255."),
    ("SSIM window and range",
     "CDDFuse calls scikit-image's structural_similarity with its defaults: 7x7 uniform window, "
     "sample covariance, and (scikit-image 0.19, float input) data_range 2, so the stabilising "
     "constants are about 16000x smaller than with L = 255; newer scikit-image raises instead. "
     "VIFB and Wang et al. use an 11x11 Gaussian (sigma 1.5) with L = 255."),
    ("SSIM sum or mean",
     "CDDFuse, VIFB and fusekit report SSIM(F,A) + SSIM(F,B) (range up to 2); some papers print the "
     "mean (up to 1). Halve a sum to compare with a mean."),
    ("AG",
     "CDDFuse: central differences averaged over all M N pixels. VIFB: the same differences summed "
     "over M N pixels but divided by (M-1)(N-1). Cui et al. (standard): forward differences over "
     "(M-1)(N-1) pixels."),
    ("PSNR",
     "Three formulas in use: peak max(F) (CDDFuse), a +48 dB offset from mixing 0-1 and 0-255 scales "
     "(several MATLAB scripts), and VIFB's 20 log10(255 / sqrt(m)) with the pseudo-MSE "
     "m = sqrt(sum (S-F)^2) / (M N). The textbook is 10 log10(255^2 / MSE)."),
    ("RMSE",
     "VIFB's metricsRmse.m divides sqrt(sum (S-F)^2) by M N instead of sqrt(M N): its 'RMSE' is the "
     "RMSE divided by sqrt(M N) (about 1/550 of it for 640 x 480 images)."),
    ("SF on colour",
     "VIFB's [m, n] = size(F) on an M x N x 3 array gives n = 3N, so a colour F is scored as its three "
     "channels laid side by side, including the differences across the seams."),
    ("Colour",
     "CDDFuse reads grey (OpenCV BGR2GRAY, rounded); VIFB scores colour fused images per channel and "
     "averages; fusekit's standard profile uses BT.601 luminance."),
    ("Qabf quirks",
     "All the public Python and MATLAB Q^{AB/F} code shares one implementation: where source and "
     "fused gradient magnitudes are equal the ratio is g_F (not 1), the angle is pi/2 wherever "
     "gx = 0, and borders are zero-padded. The standard profile follows the paper."),
    ("Tsallis entropy",
     "Liu's tsallis.m pairs p(x, y) with transposed marginals p_Y(x) p_X(y); this matches Cvejic et al. "
     "only when both images have the same histogram. fusekit follows the paper."),
    ("Q_CB and Q_CV on flat images",
     "Liu's code (and so VIFB) divides 0 by 0 for a constant image and returns NaN; VIFB's nanmean "
     "then drops the image. fusekit's vifb profile keeps that; standard and cddfuse define the value."),
    ("IVIF_ZOO",
     "The IVIF_ZOO survey's Python metrics: SSIM on images scaled by 255 with data_range 255 (so "
     "the constants of L = 1), PSNR = 20 log10(255 / sqrt(MSE)) with the MSE of images divided by 255 "
     "(+48.13 dB over the textbook), VIF with off-centre Gaussian windows from "
     "torch.linspace(-N//2, N//2, N) and zero-padded 'same' filtering, and N^{AB/F} with the angle "
     "arctan(gx/gy) and zero weight below Td."),
    ("FMI",
     "Haghighat's fmi.m scales its copy of the fused window while scoring the first source and then "
     "compares the second source with that scaled copy, so a window where B equals F (but A does not) "
     "is estimated instead of counting 1, and a constant one counts 0: the script is not symmetric in "
     "its sources. fusekit compares each source with the fused window as given. fmi.m's wavelet "
     "feature uses MATLAB's 102-tap dmey filter; PyWavelets' has 62 taps, so fmi-w agrees to about 2 "
     "digits only. Its default feature is 'edge' although its help says 'none': papers' FMI without a "
     "suffix may be either."),
    ("VIF",
     "The Python scripts' 'VIF'/'VIFF' is Sheikh's pixel-domain VIF summed over both sources; MEFB's "
     "'VIF' is another metric (Han et al. 2013)."),
)


def _profiles() -> tuple[str, ...]:
    from .profiles import PROFILES

    return tuple(PROFILES)


def _metrics():
    from .catalog import BUILTIN_METRICS

    return BUILTIN_METRICS


def _metric(name: str):
    for m in _metrics():
        if m.name == name:
            return m
    from ..errors import UnknownNameError

    raise UnknownNameError("metric", name, [m.name for m in _metrics()])


def convention(profile: str, metric: str) -> dict[str, str] | None:
    """The conventions ``profile`` uses for the built-in ``metric``.

    Parameters
    ----------
    profile : str
        A profile name (``standard``, ``cddfuse``, ``vifb``).
    metric : str
        A built-in metric key.

    Returns
    -------
    dict of str to str or None
        One entry per key of :data:`ASPECTS` (``"-"`` where it does not
        apply) plus ``"paper"`` (the paper that defines the metric) and
        ``"unit"``; ``None`` where the profile does not define the metric
        (``vifb`` defines only VIFB's 13).

    Raises
    ------
    UnknownNameError
        Unknown profile or metric.
    """
    from .profiles import get_profile

    prof = get_profile(profile)
    m = _metric(metric)
    if not prof.defines(metric) or metric not in prof.conventions:
        return None  # a profile without entries for a metric (a plugin's profile) shows none
    entry = dict(prof.conventions[metric])
    entry["paper"] = m.reference
    entry["unit"] = m.unit_for(prof.name) or "no unit"
    return {key: entry[key] for key in (*(k for k, _ in ASPECTS), "paper", "unit")}


def conventions_table(profile: str, metrics: Iterable[str] | None = None) -> dict[str, dict[str, str] | None]:
    """``{metric: convention(profile, metric)}`` for the built-in metrics (or ``metrics``), in report order."""
    names = [m.name for m in _metrics()] if metrics is None else list(metrics)
    return {name: convention(profile, name) for name in names}


def format_conventions(profile: str, metrics: Iterable[str] | None = None) -> str:
    """Plain-text listing of :func:`conventions_table` (what ``--list-metrics --profile`` prints).

    One block per metric: a title line ``KEY arrow full name [unit]``, then
    one indented ``aspect: value`` line per aspect and the paper. Metrics
    the profile does not define are listed at the end.
    """
    from .profiles import get_profile

    prof = get_profile(profile)
    table = conventions_table(prof.name, metrics)
    width = max(len(title) for _, title in ASPECTS + (("paper", "paper"),))
    lines = [f"profile {prof.name}: {prof.summary}", f"  ({prof.reference})", ""]
    missing = []
    for name, entry in table.items():
        if entry is None:
            missing.append(name)
            continue
        m = _metric(name)
        lines.append(f"{name} {m.arrow} {m.full_name} [{entry['unit']}]")
        for key, title in (*ASPECTS, ("paper", "paper")):
            lines.append(f"  {title.ljust(width)}  {entry[key]}")
        lines.append("")
    if missing:
        others = sorted({p for n in missing for p in _profiles() if convention(p, n) is not None})
        lines.append(f"not defined by profile {prof.name}: {', '.join(missing)}"
                     + (f" (see profile {', '.join(others)})" if others else ""))
    return "\n".join(lines).rstrip() + "\n"


def _md(text: str) -> str:
    """``text`` safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def conventions_markdown() -> str:
    """The documentation page ``docs/metric_conventions.md``, generated from this module's data.

    Returns
    -------
    str
        Markdown: one matrix per aspect (metrics by profiles), the papers,
        then the differences between public
        scripts (:data:`SCRIPT_DIFFERENCES`). The cells are the values
        :func:`format_conventions` prints, escaped for Markdown.
    """
    from .profiles import PROFILES

    profiles = list(PROFILES)
    metrics = [m.name for m in _metrics()]
    tables = {p: conventions_table(p) for p in profiles}
    out = [
        "# Metric conventions across profiles",
        "",
        "<!-- Generated by `python -m fusekit.metrics.conventions docs/metric_conventions.md`",
        "     from fusekit/metrics/conventions.py; edit that file, not this page. -->",
        "",
        "The same metric name gives different numbers in different evaluation scripts. A fusekit",
        "*profile* fixes every convention that changes the number; this page lists them for every",
        "built-in metric and profile. `fusekit eval --list-metrics --profile P` prints the same",
        "entries for one profile, and the HTML report (`fusekit eval ... --report report.html`)",
        "carries them for the metrics it scored.",
        "",
        "Profiles:",
        "",
    ]
    for p in PROFILES.values():
        out.append(f"- `{p.name}`: {_md(p.summary)} ({_md(p.reference)}).")
    out += ["", "Not defined (`n/a`): the profile has no such metric; asking for it is an error that "
                "names the profiles that define it.", ""]
    for key, title in (*ASPECTS, ("unit", "unit")):
        out += [f"## {title[0].upper() + title[1:]}", "",
                "| metric | " + " | ".join(f"`{p}`" for p in profiles) + " |",
                "|---|" + "---|" * len(profiles)]
        for name in metrics:
            cells = []
            for p in profiles:
                entry = tables[p][name]
                cells.append("n/a" if entry is None else _md(entry[key]))
            out.append(f"| `{name}` | " + " | ".join(cells) + " |")
        out.append("")
    out += ["## Papers", "", "| metric | name | better | paper |", "|---|---|---|---|"]
    for m in _metrics():
        out.append(f"| `{m.name}` | {_md(m.full_name)} | {'higher' if m.higher_is_better else 'lower'} | "
                   f"{_md(m.reference)} |")
    out += ["", "## Where the public scripts differ", "",
            "Found by reading the scripts (CDDFuse `utils/Evaluator.py`, VIFB `metrics/*.m`, Zheng Liu's",
            "`imageFusionMetrics`, IVIF_ZOO `Metric/`, Haghighat's `fmi.m`), not their documentation:", ""]
    for topic, text in SCRIPT_DIFFERENCES:
        out.append(f"- **{topic}.** {text}")
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write :func:`conventions_markdown` to the file named in ``argv`` (stdout without one)."""
    argv = sys.argv[1:] if argv is None else argv
    text = conventions_markdown()
    if not argv:
        sys.stdout.write(text)
        return 0
    from ..io import write_bytes_atomic

    write_bytes_atomic(argv[0], text.encode("utf-8"), what="page")
    return 0


def check() -> list[str]:
    """Problems in the data: a built-in metric without an entry, an entry without an aspect.

    Returns
    -------
    list of str
        Empty when every metric of every profile that defines it has all aspects.
    """
    problems = []
    for p in _profiles():
        for m in _metrics():
            try:
                entry = convention(p, m.name)
            except KeyError as exc:
                problems.append(f"{p}/{m.name}: no entry for {exc}")
                continue
            if entry is not None:
                problems += [f"{p}/{m.name}: empty {k}" for k, v in entry.items() if not v]
    return problems


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
