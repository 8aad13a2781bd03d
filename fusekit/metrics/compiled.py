"""Optional compiled kernels (numba) for the slowest steps of the metrics, off by default.

With numba installed (``pip install "fusekit[fast]"``) and the environment
variable ``FUSEKIT_NUMBA=1``, these steps run as compiled loops instead of
chains of numpy array operations:

- ``cddfuse`` SSIM: exact window sums (the profile's images are integers,
  which keeps every sum exact, see
  :func:`fusekit.metrics._numba_kernels.box_mean`); the values are
  scikit-image's bit for bit, as numpy's exact sums
  (:mod:`fusekit.metrics.exact_filters`) give them.
- VIF and ``standard`` SSIM: the separable Gaussian filters are direct
  loops, and the per-pixel terms one pass per source.
- Q^{AB/F} and N^{AB/F}: Sobel edges and the per-pixel terms in one pass
  (``cddfuse`` Q^{AB/F} in the script's float32 steps).

The values agree with the numpy/scipy path to about 1e-9 relative (the sums
run in another order) and are identical for SSIM under ``cddfuse``.

Why off by default (measured, ``BENCHMARKS.md`` section
``metrics-first-run``): numba compiles a kernel on its first use (about
4.5 s of CPU for the ``cddfuse`` set on this 2-core machine) and every later
process pays about 0.5-0.8 s of CPU to import numba and load the cached
kernels, while the kernels save only about 10 ms per RoadScene triplet and
25 ms per 640x480 triplet over the numpy path: they pay off only from
roughly 20-50 triplets on (41 RoadScene triplets: no gain), and a first
run would wait for the compiler. Choosing them per run (by cache state or
image count) would make a metric's last digits depend on that choice, so
the choice is the user's: ``FUSEKIT_NUMBA=1`` for large runs,
``FUSEKIT_NUMBA=0`` (or unset) for numpy/scipy only. Only SSIM, VIF, Qabf
and Nabf use kernels (:data:`KERNEL_METRICS`); numba is imported, and a
kernel compiled, only when one of them is computed with the kernels
switched on. numba caches each compiled kernel on disk (in
``NUMBA_CACHE_DIR`` if set, else beside this module if that folder is
writable, else in the user's cache folder, e.g. ``~/.cache/numba``).

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
from typing import TYPE_CHECKING, Callable, Iterable

if TYPE_CHECKING:
    from .profiles import Profile

__all__ = ["KERNEL_METRICS", "available", "enabled", "kernels", "needed", "status", "warm_up"]

_STATE: dict[str, ModuleType | str | None] = {}


def _setting() -> str:
    return os.environ.get("FUSEKIT_NUMBA", "").strip().lower()


def _switched_on() -> bool:
    """``FUSEKIT_NUMBA`` asks for the kernels (``1``, ``true``, ``yes``, ``on``)."""
    return _setting() in ("1", "true", "yes", "on")


def _switched_off() -> bool:
    """``FUSEKIT_NUMBA`` is given and does not ask for them (``0``, ``false``, ...)."""
    return bool(_setting()) and not _switched_on()


def kernels() -> ModuleType | None:
    """The module of numba kernels, or ``None`` when they are not switched on or numba is missing."""
    if "module" not in _STATE:
        module = None
        if _switched_on():
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
    """Whether the compiled kernels are in use (``FUSEKIT_NUMBA=1`` and numba importable)."""
    return kernels() is not None


def available() -> bool:
    """Whether numba is installed, so that ``FUSEKIT_NUMBA=1`` would turn the kernels on (numba not imported)."""
    return _numba_installed()


def _numba_installed() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):  # e.g. sys.modules["numba"] set to None
        return False


def status() -> str:
    """One line for users: whether the compiled kernels are in use, and if not, why and how to get them."""
    if enabled():
        import numba

        return f"compiled metric kernels: on (numba {numba.__version__})"
    if _switched_off():
        return f"compiled metric kernels: off (FUSEKIT_NUMBA={os.environ['FUSEKIT_NUMBA'].strip()})"
    if "error" in _STATE:
        return (f"compiled metric kernels: off (numba failed: {_STATE['error']}; "
                f"set NUMBA_CACHE_DIR to a writable folder)")
    if _switched_on():
        return "compiled metric kernels: off (FUSEKIT_NUMBA=1 but numba is not installed; pip install 'fusekit[fast]')"
    how = ("FUSEKIT_NUMBA=1 turns them on" if _numba_installed()
           else "pip install 'fusekit[fast]' and FUSEKIT_NUMBA=1 turn them on")
    return (f"compiled metric kernels: off (the default: numpy is as fast unless a run scores many "
            f"images; {how}; the first run then compiles them for a few seconds)")


#: The built-in metrics that call kernels; the others never import numba.
KERNEL_METRICS: frozenset[str] = frozenset({"ssim", "vif", "qabf", "nabf"})


def needed(metrics: Iterable[str] | None = None, profile: "str | Profile" = "standard") -> list[str]:
    """The metrics among ``metrics`` whose computation calls compiled kernels under ``profile``.

    Parameters
    ----------
    metrics : iterable of str, optional
        Metric names; default every built-in metric.
    profile : str or Profile
        Profile (or its name); metrics it does not define are left out.

    Returns
    -------
    list of str
        Sorted names, empty when no kernel is needed (then numba is not imported).
    """
    from .profiles import get_profile

    prof = get_profile(profile) if isinstance(profile, str) else profile
    names = KERNEL_METRICS if metrics is None else {str(m).strip().lower() for m in metrics}
    return sorted(n for n in names & KERNEL_METRICS if prof.defines(n))


def warm_up(notify: Callable[[str], None] | None = None, after_s: float = 2.0,
            metrics: Iterable[str] | None = None, profile: "str | Profile" = "standard") -> bool:
    """Import numba and load (or compile) the kernels that ``metrics`` need, e.g. before forking workers.

    Only the kernels of the metrics asked for are loaded: on a first run
    (nothing in numba's cache yet) that is what is compiled, so
    ``--metrics en,sd,mi`` compiles nothing and does not import numba.

    Parameters
    ----------
    notify : callable, optional
        Called with a one-line message if loading takes longer than
        ``after_s`` seconds (numba compiles on the first run only), so that
        a command line can say why it pauses.
    after_s : float
        Seconds before ``notify`` is called.
    metrics : iterable of str, optional
        Names of the metrics that will be computed; default every built-in
        metric of ``profile``.
    profile : str or Profile
        Profile the metrics will be computed under.

    Returns
    -------
    bool
        Whether kernels were loaded: :func:`enabled` and at least one of
        ``metrics`` uses them.
    """
    wanted = needed(metrics, profile)
    if not wanted or not _switched_on():
        return False
    k = kernels()
    if k is None:
        return False
    timer = None
    if notify is not None:
        timer = threading.Timer(after_s, notify, args=(
            "compiling fusekit's metric kernels with numba (first run only, a few seconds)",))
        timer.daemon = True
        timer.start()
    try:
        _load_all(k, wanted, profile)
    finally:
        if timer is not None:
            timer.cancel()
    return True


def _load_all(k: ModuleType, metrics: Iterable[str] = KERNEL_METRICS,
              profile: "str | Profile" = "standard") -> None:
    """Compute ``metrics`` once on a small integer triplet, so that each kernel they call is loaded
    (or compiled) for exactly the argument types the metrics pass. Best effort: a kernel missed here
    is compiled on its first real call."""
    import numpy as np

    from .compute import compute

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (64, 64)).astype(np.uint8)
    b = np.ascontiguousarray(a.T)
    f = (a // 2 + b // 2).astype(np.uint8)
    for name in metrics:
        try:
            compute(f, [a, b], metrics=[name], profile=profile)
        except Exception:  # noqa: BLE001 - a metric refusing the tiny triplet only defers its compile
            pass


def _reset() -> None:
    """Forget the cached decision (tests switch ``FUSEKIT_NUMBA``)."""
    _STATE.clear()
