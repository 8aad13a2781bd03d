"""Optional compiled kernels (numba) for the slowest steps of the metrics.

With numba installed (``pip install "fusekit[fast]"``) these steps run as
compiled loops instead of chains of numpy array operations:

- ``cddfuse`` SSIM: scikit-image's uniform filters become exact window sums
  (the profile's images are integers, which keeps every sum exact, see
  :func:`fusekit.metrics._numba_kernels.box_mean`) and its float32 map one
  pass; the values are scikit-image's bit for bit.
- VIF and ``standard`` SSIM: the separable Gaussian filters are direct
  loops, and the per-pixel terms one pass per source.
- Q^{AB/F} and N^{AB/F}: Sobel edges and the per-pixel terms in one pass
  (``cddfuse`` Q^{AB/F} in the script's float32 steps).

The values agree with the numpy/scipy path to about 1e-12 relative (the
sums run in another order) and are identical for SSIM under ``cddfuse``.
Without numba, or with the environment variable ``FUSEKIT_NUMBA=0``, the
numpy/scipy code runs. numba compiles the kernels on first use (about half a minute
on a laptop-class core) and caches them on disk (beside this module, else in the user's
cache folder, or in ``NUMBA_CACHE_DIR``), so later runs only load them.

Examples
--------
>>> from fusekit.metrics import compiled
>>> compiled.enabled() in (True, False)
True
"""

from __future__ import annotations

import os
import threading
from types import ModuleType
from typing import Callable

__all__ = ["enabled", "kernels", "status", "warm_up"]

_STATE: dict[str, ModuleType | str | None] = {}


def _switched_off() -> bool:
    return os.environ.get("FUSEKIT_NUMBA", "1").strip().lower() in ("0", "false", "no", "off")


def kernels() -> ModuleType | None:
    """The module of numba kernels, or ``None`` when numba is missing or switched off."""
    if "module" not in _STATE:
        module = None
        if not _switched_off():
            try:
                from . import _numba_kernels as module
            except ImportError:  # numba is an optional extra
                module = None
            except Exception as exc:  # e.g. no writable cache folder: numpy/scipy still work
                module = None
                _STATE["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        _STATE["module"] = module
    return _STATE["module"]


def enabled() -> bool:
    """Whether the compiled kernels are in use (numba importable and not switched off)."""
    return kernels() is not None


def status() -> str:
    """One line for users: whether the compiled kernels are in use, and if not, why and how to get them."""
    if enabled():
        import numba

        return f"compiled metric kernels: on (numba {numba.__version__})"
    if _switched_off():
        return "compiled metric kernels: off (FUSEKIT_NUMBA=0)"
    if "error" in _STATE:
        return (f"compiled metric kernels: off (numba failed: {_STATE['error']}; "
                f"set NUMBA_CACHE_DIR to a writable folder)")
    return "compiled metric kernels: off (numba not installed; pip install 'fusekit[fast]' for faster metrics)"


def warm_up(notify: Callable[[str], None] | None = None, after_s: float = 2.0) -> bool:
    """Import numba and load (or compile) every kernel now, e.g. before forking workers.

    Parameters
    ----------
    notify : callable, optional
        Called with a one-line message if loading takes longer than
        ``after_s`` seconds (numba compiles on the first run only), so that
        a command line can say why it pauses.
    after_s : float
        Seconds before ``notify`` is called.

    Returns
    -------
    bool
        :func:`enabled`.
    """
    k = kernels()
    if k is None:
        return False
    timer = None
    if notify is not None:
        timer = threading.Timer(after_s, notify, args=(
            "compiling fusekit's metric kernels with numba (first run only, about half a minute)",))
        timer.daemon = True
        timer.start()
    try:
        _load_all(k)
    finally:
        if timer is not None:
            timer.cancel()
    return True


def _load_all(k: ModuleType) -> None:
    """Call every kernel once on tiny inputs of the types the metrics pass."""
    import numpy as np

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
    e = k.edges_standard(z)
    k.qabf_standard(*e, *e)
    k.nabf_numerator(e[1], e[2], z, e[1], e[2], z, e[1], e[2])
    k.ssim_standard_mean(z, z, z, z, z, 1.0, 1.0)


def _reset() -> None:
    """Forget the cached decision (tests switch ``FUSEKIT_NUMBA``)."""
    _STATE.clear()
