"""Optional compiled kernels for the slowest steps of the ``cddfuse`` profile.

With numba installed (``pip install "fusekit[fast]"``) the ``cddfuse`` SSIM
runs as compiled loops that reproduce scikit-image's float32 algorithm bit
for bit: its uniform filters become exact window sums (see
:func:`fusekit.metrics._numba_kernels.box_mean`) and its map is formed in
one pass instead of a dozen array operations. Without numba, or with the
environment variable ``FUSEKIT_NUMBA=0``, the numpy/scipy code runs and
gives the same values. numba compiles the kernels on first use and caches
them on disk, so only the first run pays the compile time.

Examples
--------
>>> from fusekit.metrics import compiled
>>> compiled.enabled() in (True, False)
True
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["enabled", "kernels", "warm_up"]

_STATE: dict[str, ModuleType | None] = {}


def kernels() -> ModuleType | None:
    """The module of numba kernels, or ``None`` when numba is missing or switched off."""
    if "module" not in _STATE:
        module = None
        if os.environ.get("FUSEKIT_NUMBA", "1").strip().lower() not in ("0", "false", "no", "off"):
            try:
                from . import _numba_kernels as module
            except ImportError:  # numba is an optional extra
                module = None
        _STATE["module"] = module
    return _STATE["module"]


def enabled() -> bool:
    """Whether the compiled kernels are in use (numba importable and not switched off)."""
    return kernels() is not None


def warm_up() -> bool:
    """Import numba and load (or compile) every kernel now, e.g. before forking workers.

    Returns
    -------
    bool
        :func:`enabled`.
    """
    import numpy as np

    k = kernels()
    if k is None:
        return False
    x = np.zeros((8, 8), np.float32)
    one = np.float32(1.0)
    k.integer_valued(x, 1.0)
    u, v = k.ssim_image_stats(x, 7, one)
    k.ssim_map(x, x, u, v, u, v, 7, one, one, one)
    for step in (1, 2):
        k.filter_valid(np.zeros((1, 8, 8)), np.ones(3) / 3.0, step)
    k.vif_source_terms(np.zeros((8, 8)), np.zeros((8, 8)), 2.0, 1e-10)
    z = np.zeros((8, 8))
    k.vif_numerator(z, z, z, z, z, 2.0, 1e-10)
    e = k.edges_cddfuse(z)
    k.qabf_sums(*k.qabf_exponents(*e, *e), e[1])
    return True


def _reset() -> None:
    """Forget the cached decision (tests switch ``FUSEKIT_NUMBA``)."""
    _STATE.clear()
