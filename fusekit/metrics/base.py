"""The metric object, the value it returns, and the per-image computation context.

A :class:`Metric` is plain data plus a function. The function receives a
:class:`MetricContext` holding the fused image and the sources (luminance,
float64, 0-255 scale, already prepared by the profile) and returns a float.
The context caches intermediate results (histograms, gradients, local
statistics) so that metrics computed together on one image share them: the
fused image's Sobel gradients, for instance, are computed once for Q^{AB/F}
and N^{AB/F}. Results that depend on the sources alone go to a second cache
that contexts made with :meth:`MetricContext.with_fused` share, so scoring
several methods' outputs of one scene computes them once.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Hashable, Iterator, Mapping

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .profiles import Profile


class MetricContext:
    """Images of one evaluation and a cache shared by the metrics computed on them.

    Parameters
    ----------
    fused : ndarray, shape (H, W)
        Fused luminance, 0-255 scale (``(H, W, 3)`` colour under profiles
        that score channels, such as ``vifb``).
    sources : sequence of ndarray, each (H, W)
        Source luminances, 0-255 scale, same size as ``fused`` (colour
        ``(H, W, 3)`` allowed as for ``fused``).
    profile : Profile
        The profile the metrics follow (:mod:`fusekit.metrics.profiles`).
    source_cache : dict, optional
        Cache of results that depend on the sources alone, shared with other
        contexts of the same sources and profile (see :meth:`with_fused`).

    Attributes
    ----------
    fused : ndarray, float64, shape (H, W)
    sources : tuple of ndarray, float64, each (H, W)
    images : tuple of ndarray
        ``(fused, *sources)``; index 0 is the fused image. Cache keys use
        these indices.
    profile : Profile
    """

    def __init__(self, fused: np.ndarray, sources: tuple[np.ndarray, ...] | list[np.ndarray],
                 profile: "Profile", source_cache: dict[Hashable, Any] | None = None) -> None:
        self.fused = np.asarray(fused, dtype=np.float64)
        self.sources = tuple(np.asarray(s, dtype=np.float64) for s in sources)
        self.images = (self.fused, *self.sources)
        self.profile = profile
        self._cache: dict[Hashable, Any] = {}
        self._source_cache: dict[Hashable, Any] = {} if source_cache is None else source_cache

    def with_fused(self, fused: np.ndarray) -> "MetricContext":
        """A context for another fused image of the same sources, sharing the source cache.

        Parameters
        ----------
        fused : ndarray, shape (H, W)
            Fused luminance, prepared like this context's images (0-255),
            same size as the sources.

        Returns
        -------
        MetricContext
            Source statistics already computed here (gradients, local means,
            grey levels) are reused, not recomputed.
        """
        fused = np.asarray(fused, dtype=np.float64)
        if self.sources and fused.shape[:2] != self.sources[0].shape[:2]:
            raise ValueError(f"fused image of shape {fused.shape} for sources of shape {self.sources[0].shape}")
        return MetricContext(fused, self.sources, self.profile, self._source_cache)

    def cached(self, key: Hashable, factory: Callable[[], Any]) -> Any:
        """Return the value stored under ``key``, computing it with ``factory()`` once.

        For results that involve the fused image. A plugin metric names its
        keys after itself (``("mymetric", ...)``) to stay clear of others.
        """
        return _lookup(self._cache, key, factory)

    def cached_source(self, key: Hashable, factory: Callable[[], Any]) -> Any:
        """:meth:`cached` for results that depend on the sources alone.

        These are shared by every context made with :meth:`with_fused`, so
        the value must not be modified in place by its users.
        """
        return _lookup(self._source_cache, key, factory)

    def cached_image(self, index: int, key: Hashable, factory: Callable[[], Any]) -> Any:
        """Cache a result of image ``index`` alone: per context for the fused image
        (``index == 0``), in the shared source cache for a source."""
        if index == 0:
            return self.cached((key, 0), factory)
        return self.cached_source((key, index), factory)

    def float32(self, index: int) -> np.ndarray:
        """Image ``index`` (0 = fused) as float32, for profiles that reproduce float32 scripts."""
        return self.cached_image(index, "float32", lambda: self.images[index].astype(np.float32))

    @contextlib.contextmanager
    def releasing(self, *, sources: bool, keep: frozenset | None = None) -> Iterator["MetricContext"]:
        """Forget, on leaving, what the metric computed inside cached for itself alone.

        A built-in metric caches its intermediate maps (local statistics,
        gradients, filtered images: up to ~25 MB each for a 640x480 triplet)
        so that other fused images of the same sources reuse the sources'
        part; only the families in :data:`SHARED_FAMILIES` are read by other
        metrics. On leaving, entries made inside this block whose family is
        not shared are dropped, and so are entries of the shared families
        not in ``keep`` (those no later metric reads): from this context's
        own cache always, from the source cache only with ``sources`` (no
        further fused image of these sources will be scored). A dropped
        entry that is asked for again is recomputed, to the same value: this
        bounds the memory a triplet's metrics hold (fewer fresh pages for
        the kernel to fault in and zero) and changes no number.

        Parameters
        ----------
        sources : bool
            Also release entries of the source cache.
        keep : frozenset of str, optional
            Shared families to keep (default: all of them); see
            :func:`families_needed`.

        Yields
        ------
        MetricContext
            This context.
        """
        own, shared = set(self._cache), set(self._source_cache) if sources else None
        if keep is None:
            keep = SHARED_FAMILIES
        try:
            yield self
        finally:
            _release(self._cache, own, keep)
            if shared is not None:
                _release(self._source_cache, shared, keep)


#: Cache key families (the first string of a key) that several built-in metrics read, and the
#: metrics that read them: the grey levels, the centred images, the Sobel maps, the images
#: stretched to 0-255 and their levels. A metric missing here that reads one of them only
#: recomputes what was released before it (same value).
FAMILY_USERS: Mapping[str, frozenset] = {
    "levels": frozenset({"en", "mi", "ce"}),
    "centred": frozenset({"scd", "cc"}),
    "edges": frozenset({"qabf", "nabf"}),
    "stretch-255": frozenset({"qcb", "qcv", "nmi"}),
    "stretched-levels": frozenset({"nmi", "te", "qncie"}),
}
SHARED_FAMILIES = frozenset(FAMILY_USERS)


def families_needed(names: "list[str] | tuple[str, ...]") -> list[frozenset]:
    """Per position in a list of metric names, the shared families a later metric still reads.

    Parameters
    ----------
    names : sequence of str
        Metric names in the order they are computed.

    Returns
    -------
    list of frozenset of str
        ``out[i]``: the families of :data:`FAMILY_USERS` read by
        ``names[i + 1:]`` (the ``keep`` of :meth:`MetricContext.releasing`
        after metric ``i``).
    """
    out: list[frozenset] = []
    later: set[str] = set()
    for name in reversed(names):
        out.append(frozenset(later))
        later |= {family for family, users in FAMILY_USERS.items() if name in users}
    return out[::-1]


def key_family(key: Hashable) -> Hashable:
    """The family of a cache key: its first element, down nested tuples (``(("edges", ...), 0)`` -> ``"edges"``)."""
    while isinstance(key, tuple) and key:
        key = key[0]
    return key


def _release(cache: dict[Hashable, Any], before: set, keep: frozenset) -> None:
    """Remove from ``cache`` the entries not in ``before`` of an unshared family, and those of a
    shared family not in ``keep``."""
    for key in list(cache):
        family = key_family(key)
        if family in SHARED_FAMILIES:
            if family not in keep:
                del cache[key]
        elif key not in before:
            del cache[key]


def _lookup(cache: dict[Hashable, Any], key: Hashable, factory: Callable[[], Any]) -> Any:
    try:
        return cache[key]
    except KeyError:
        value = cache[key] = factory()
        return value


@dataclass(frozen=True)
class Metric:
    """A fusion quality metric and what its number means.

    Parameters
    ----------
    name : str
        Registry key, short and lowercase (``"en"``, ``"ssim"``).
    full_name : str
        Human-readable name.
    unit : str
        Unit of the value (``"bits"``, ``"dB"``, ``""`` for dimensionless).
    higher_is_better : bool
        Direction of the metric.
    needs_sources : bool
        ``False`` for metrics of the fused image alone (EN, SD, SF, AG).
    reference : str
        The paper that defines it.
    function : callable
        ``function(ctx: MetricContext) -> float``.
    description : str
        One line on how sources are combined (sum, mean) and conventions.
    profile_units : mapping of str to str
        Units that differ by profile (MI is in nats under ``cddfuse``).
    sources : tuple of int or None
        Numbers of sources the metric is defined for; ``None`` means any.
    label : str
        Short display name for tables (default: the name in capitals).
    on_request : bool
        ``True`` for a metric computed only when asked for by name, not in
        the default "all metrics" set (``ms-ssim``: images of 161 pixels or
        more; ``mef-ssim``: exposure stacks).

    Examples
    --------
    A plugin metric (registered from a ``register_metrics`` hook)::

        from fusekit.metrics import Metric

        def _mean(ctx):
            return float(ctx.fused.mean())

        MEAN = Metric("mean", "mean grey level", "grey levels", True, False,
                      "-", _mean)

    What depends on one image alone goes through :meth:`MetricContext.cached_image`:
    per fused image for index 0, once per scene for a source (``fusekit eval``
    scores every method's output of a scene with contexts that share it)::

        def _edge_overlap(ctx):
            def edges(i):
                return ctx.cached_image(i, "overlap-edges",
                                        lambda: np.hypot(*np.gradient(ctx.images[i])) > 20)

            found = [edges(i) for i in range(len(ctx.images))]
            return float(np.mean([(found[0] & e).sum() / max(e.sum(), 1) for e in found[1:]]))
    """

    name: str
    full_name: str
    unit: str
    higher_is_better: bool
    needs_sources: bool
    reference: str
    function: Callable[[MetricContext], float] = field(repr=False, compare=False)
    description: str = ""
    profile_units: Mapping[str, str] = field(default_factory=dict, compare=False)
    sources: tuple[int, ...] | None = None
    label: str = ""
    on_request: bool = False

    @property
    def display(self) -> str:
        """Name shown in tables: ``label`` or the name in capitals."""
        return self.label or self.name.upper()

    def unit_for(self, profile: str) -> str:
        """The unit of this metric's value under ``profile``."""
        return self.profile_units.get(profile, self.unit)

    @property
    def arrow(self) -> str:
        """``"↑"`` if higher is better, else ``"↓"``."""
        return "\u2191" if self.higher_is_better else "\u2193"


class Score(float):
    """A metric value that knows its metric, unit and direction.

    Behaves as a ``float``; ``str`` / ``repr`` add the unit.

    Attributes
    ----------
    metric : str
    unit : str
    higher_is_better : bool
    """

    def __new__(cls, value: float, metric: str = "", unit: str = "",
                higher_is_better: bool = True) -> "Score":
        obj = super().__new__(cls, value)
        obj.metric = metric
        obj.unit = unit
        obj.higher_is_better = higher_is_better
        return obj

    def __repr__(self) -> str:
        number = float.__repr__(float(self))
        return f"{number} {self.unit}" if self.unit else number

    __str__ = __repr__
