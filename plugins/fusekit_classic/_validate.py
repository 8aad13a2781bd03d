"""Parameter checks and source stacking shared by the classic fusers.

Every check raises :class:`fusekit.errors.ParameterError` with a one-line
message that names the parameter, its valid range, the value that came and
how to fix it.
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import numpy as np

from fusekit.errors import InputError, ParameterError


def check_int(method: str, name: str, value: object, *, minimum: int,
              maximum: int | None = None, odd: bool = False) -> int:
    """Return ``value`` as int if it is an integer in ``[minimum, maximum]``.

    Parameters
    ----------
    method : str
        Method key, used in the message.
    name : str
        Parameter name, used in the message.
    value : object
        What the caller passed.
    minimum, maximum : int
        Inclusive bounds; ``maximum=None`` means unbounded.
    odd : bool
        Also require an odd value (window sizes with a centre pixel).
    """
    rng = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    if odd:
        rng = "an odd integer " + rng
    else:
        rng = "an integer " + rng
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(
            f"{method}: {name} must be {rng}, got {value!r} ({type(value).__name__}); "
            f"pass e.g. {name}={max(minimum, 1) | (1 if odd else 0)}")
    ivalue = int(value)
    if ivalue < minimum or (maximum is not None and ivalue > maximum) or (odd and ivalue % 2 == 0):
        raise ParameterError(f"{method}: {name} must be {rng}, got {ivalue}; choose a value in that range")
    return ivalue


def check_float(method: str, name: str, value: object, *, minimum: float | None = None,
                maximum: float | None = None, min_inclusive: bool = True,
                max_inclusive: bool = True) -> float:
    """Return ``value`` as float if it is a finite number within the bounds.

    Parameters
    ----------
    method, name : str
        Method key and parameter name, used in the message.
    value : object
        What the caller passed.
    minimum, maximum : float or None
        Bounds; ``None`` means unbounded on that side.
    min_inclusive, max_inclusive : bool
        Whether the bound itself is allowed.
    """
    lo = "" if minimum is None else ("[" if min_inclusive else "(") + f"{minimum:g}"
    hi = "" if maximum is None else f"{maximum:g}" + ("]" if max_inclusive else ")")
    if minimum is not None and maximum is not None:
        rng = f"in {lo}, {hi}"
    elif minimum is not None:
        rng = (">= " if min_inclusive else "> ") + f"{minimum:g}"
    elif maximum is not None:
        rng = ("<= " if max_inclusive else "< ") + f"{maximum:g}"
    else:
        rng = "finite"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(
            f"{method}: {name} must be a number {rng}, got {value!r} ({type(value).__name__})")
    fvalue = float(value)
    bad = not math.isfinite(fvalue)
    if minimum is not None:
        bad |= fvalue < minimum if min_inclusive else fvalue <= minimum
    if maximum is not None:
        bad |= fvalue > maximum if max_inclusive else fvalue >= maximum
    if bad:
        raise ParameterError(f"{method}: {name} must be a number {rng}, got {fvalue:g}; choose a value in that range")
    return fvalue


def check_choice(method: str, name: str, value: object, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices`` (strings)."""
    if not isinstance(value, str) or value not in choices:
        raise ParameterError(
            f"{method}: {name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return value


def check_sources(method: str, sources: Sequence[np.ndarray], *, ndim: int = 2) -> None:
    """Raise :class:`InputError` unless ``sources`` are images of one shape.

    The core validates sources before calling a fuser; this re-checks the
    dimensionality so a fuser called directly fails with a clear message.

    Parameters
    ----------
    method : str
        Method key, used in the message.
    sources : sequence of ndarray
        ``S`` images of one shape.
    ndim : int
        2 for ``H x W`` luminance sources, 3 for ``H x W x 3`` colour.
    """
    if len(sources) == 0:
        raise InputError(f"{method}: got no source images; pass at least 2")
    shape = np.shape(sources[0])
    want = "H x W" if ndim == 2 else "H x W x 3"
    for src in sources:
        s = np.shape(src)
        if len(s) != ndim or (ndim == 3 and s[-1] != 3):
            raise InputError(f"{method}: each source must be {want}, got shape {s}; "
                             f"convert the images first (fusekit.fuse does this)")
        if s != shape:
            raise InputError(f"{method}: sources must share one shape, got {shape} and {s}; "
                             f"register or resize them first")


def stack_sources(method: str, sources: Sequence[np.ndarray], *, ndim: int = 2) -> np.ndarray:
    """Check the sources and stack them into a new float32 array ``S x H x W`` (or ``S x H x W x 3``).

    The result is always a copy, so fusers may work on it in place without
    touching the caller's arrays.

    Parameters
    ----------
    method : str
        Method key, used in the message.
    sources : sequence of ndarray
        ``S`` images of one shape, float32 in [0, 1].
    ndim : int
        2 for ``H x W`` luminance sources, 3 for ``H x W x 3`` colour.
    """
    check_sources(method, sources, ndim=ndim)
    return np.stack([np.asarray(s) for s in sources]).astype(np.float32, copy=False)


def finish(image: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] and return float32 (the fuser output contract)."""
    out = np.clip(image, 0.0, 1.0)
    return out.astype(np.float32, copy=False)
