"""Computing metrics on arrays: look-up by name, validation, shared context."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from ..errors import InputError, UnknownNameError
from .base import Metric, MetricContext, Score, families_needed
from .profiles import Profile, get_profile

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import PluginHost


def _registry(host: "PluginHost | None"):
    if host is None:
        from ..plugins import get_host

        host = get_host()
    return host.metrics


def list_metrics(host: "PluginHost | None" = None) -> list[Metric]:
    """Every registered metric (built-in and from plugins), sorted by name."""
    return [entry.obj for entry in _registry(host)]


def resolve_metrics(metrics: str | Iterable[str | Metric] | None = None,
                    host: "PluginHost | None" = None,
                    profile: str | Profile | None = None) -> list[Metric]:
    """Turn metric names (or a comma-separated string) into :class:`Metric` objects.

    Parameters
    ----------
    metrics : str, iterable of str or Metric, or None
        ``None`` means every registered metric but those computed on request
        (:attr:`Metric.on_request`), built-in ones first in the
        order of :data:`fusekit.metrics.BUILTIN_ORDER`, then plugin metrics
        (with ``profile``: only those the profile defines).
    host : PluginHost, optional
    profile : str or Profile, optional
        Check the metrics against this profile: ``vifb`` defines only
        VIFB's 13 metrics.

    Raises
    ------
    UnknownNameError
        A name is not registered (the message suggests close names).
    InputError
        ``profile`` does not define a metric asked for by name (the message
        names the profiles that do).
    """
    registry = _registry(host)
    prof = None if profile is None else get_profile(profile)
    if metrics is None:
        from .catalog import BUILTIN_ORDER

        names = [n for n in BUILTIN_ORDER if n in registry]
        names += [n for n in registry.names() if n not in names]
        if prof is not None:
            names = [n for n in names if prof.defines(n)]
        return [m for m in map(registry.get, names) if not m.on_request]  # those only when named
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    out: list[Metric] = []
    for m in metrics:
        metric = m if isinstance(m, Metric) else registry.get(str(m).strip().lower())
        if metric not in out:
            out.append(metric)
    if not out:
        raise UnknownNameError("metric", "", registry.names())
    if prof is not None:
        for metric in out:
            prof.function_for(metric)  # raises for a metric the profile does not define
    return out


def make_context(fused: np.ndarray, sources: Sequence[np.ndarray], profile: Profile,
                 data_range: float | None = None) -> MetricContext:
    """Prepare images with ``profile`` and check their sizes.

    Raises
    ------
    InputError
        Images of different sizes, or unusable arrays.
    """
    f = profile.prepare(fused, data_range)
    prepared = []
    for i, s in enumerate(sources):
        p = profile.prepare(s, data_range)
        _check_size(f, p, i)
        prepared.append(p)
    return MetricContext(f, prepared, profile)


def reuse_sources(base: MetricContext, fused: np.ndarray, data_range: float | None = None) -> MetricContext:
    """A context for another fused image of ``base``'s sources, sharing their statistics.

    Parameters
    ----------
    base : MetricContext
        A context of the same sources (made by :func:`make_context`).
    fused : ndarray, shape (H, W) or (H, W, 3)
        Another fused image of them, prepared with ``base``'s profile.
    data_range : float, optional
        As in :func:`make_context`.

    Returns
    -------
    MetricContext
        Whatever ``base`` (or any other context made from it) computed
        from the sources alone is reused, not recomputed; values are the
        same as with a fresh :func:`make_context`.

    Raises
    ------
    InputError
        The fused image is not the sources' size.
    """
    f = base.profile.prepare(fused, data_range)
    if base.sources:
        _check_size(f, base.sources[0], 0)
    return base.with_fused(f)


def _check_size(fused: np.ndarray, source: np.ndarray, index: int) -> None:
    if source.shape[:2] != fused.shape[:2]:
        raise InputError(
            f"source {index + 1} is {source.shape[1]}x{source.shape[0]} pixels but the fused image is "
            f"{fused.shape[1]}x{fused.shape[0]}; metrics need images of one size (crop or resize them)"
        )


def evaluate_metric(metric: Metric, ctx: MetricContext) -> Score:
    """Run one metric on a prepared context and wrap its value.

    Raises
    ------
    InputError
        The metric needs sources and there are none, or a different number.
    ArithmeticError
        The metric returned NaN (undefined); built-in metrics never do.
    """
    n = len(ctx.sources)
    if metric.needs_sources and n == 0:
        raise InputError(f"metric {metric.name!r} needs the source images; pass them as sources")
    if metric.sources is not None and metric.needs_sources and n not in metric.sources:
        want = " or ".join(str(k) for k in metric.sources)
        raise InputError(f"metric {metric.name!r} is defined for {want} sources, got {n}")
    value = float(ctx.profile.function_for(metric)(ctx))
    if np.isnan(value):
        raise ArithmeticError(f"metric {metric.name!r} is undefined (NaN) for this image")
    return Score(value, metric.name, metric.unit_for(ctx.profile.name), metric.higher_is_better)


def compute(fused: np.ndarray, sources: Sequence[np.ndarray] = (),
            metrics: str | Iterable[str | Metric] | None = None, profile: str | Profile = "standard",
            *, data_range: float | None = None, host: "PluginHost | None" = None) -> dict[str, Score]:
    """Compute fusion metrics of one fused image against its sources.

    Parameters
    ----------
    fused : ndarray, shape (H, W) or (H, W, 3)
        The fused image. Colour images are scored on their luminance
        (BT.601 Y; OpenCV's grey weights under ``cddfuse``), except under
        ``vifb``, which scores each channel as VIFB does.
    sources : sequence of ndarray, each (H, W) or (H, W, 3)
        The source images, in the order of the dataset (e.g. infrared,
        visible). Same height and width as ``fused``.
    metrics : str or iterable, optional
        Names (``["en", "ssim"]`` or ``"en,ssim"``) or :class:`Metric`
        objects. Default: every registered metric; without sources, only
        those of the fused image alone.
    profile : {"standard", "cddfuse", "vifb"} or Profile
        Conventions to follow (:mod:`fusekit.metrics.profiles`).
    data_range : float, optional
        Full scale of float inputs; default 1: floats in [0, 1], as
        :func:`fusekit.io.read_image` and :func:`fusekit.fuse` return them
        (pass 255 for floats on a 0-255 scale). uint8 / uint16 inputs are
        scaled by their type; other integer types default to 0-255. Pixels
        outside the range are an error, never rescaled.
    host : PluginHost, optional
        Where metrics are looked up; default the process-wide plugin host.

    Returns
    -------
    dict of str to Score
        Values in the order of ``metrics``; each :class:`Score` is a float
        with ``.unit`` and ``.higher_is_better``. Default metrics: those the
        profile defines.

    Raises
    ------
    UnknownNameError
        Unknown metric or profile (close names are suggested).
    InputError
        Sizes differ, pixels lie outside ``data_range``, a metric needs
        sources that were not given, or the profile does not define a
        metric asked for.

    Examples
    --------
    >>> import numpy as np
    >>> from fusekit.metrics import compute
    >>> a = np.repeat(np.array([0, 60, 120, 180], np.uint8), 16).reshape(8, 8)
    >>> b = np.full((8, 8), 50, np.uint8)       # constant: shares no information
    >>> scores = compute(a, [a, b], metrics=["en", "mi"])
    >>> scores["en"]                            # 4 equally likely grey levels
    2.0 bits
    >>> scores["mi"].unit, round(float(scores["mi"]), 6)
    ('bits', 2.0)
    """
    prof = get_profile(profile)
    chosen = resolve_metrics(metrics, host, prof)
    if metrics is None and len(sources) == 0:
        chosen = [m for m in chosen if not m.needs_sources]
    ctx = make_context(fused, sources, prof, data_range)
    out = {}
    # the context goes away after this call: what a built-in metric cached for itself alone is
    # released as soon as it is done, shared maps after their last reader (same values, less memory)
    for m, keep in zip(chosen, families_needed([m.name for m in chosen])):
        with ctx.releasing(sources=True, keep=keep) if releases_cache(m, prof) else contextlib.nullcontext():
            out[m.name] = evaluate_metric(m, ctx)
    return out


def releases_cache(metric: Metric, profile: Profile) -> bool:
    """Whether :meth:`MetricContext.releasing` may drop what ``metric`` caches under ``profile``.

    True for fusekit's own metric code (:mod:`fusekit.metrics`), whose
    cross-metric cache keys are the families of
    :data:`fusekit.metrics.base.SHARED_FAMILIES`; a plugin's metric keeps
    whatever it caches.
    """
    module = getattr(profile.function_for(metric), "__module__", None) or ""
    return module.startswith("fusekit.metrics.")
