"""Which torch device a name means: the one resolver fusing and training share.

Imports torch only when called, so ``import fusekit`` stays light.

Examples
--------
>>> from fusekit.devices import resolve_device
>>> resolve_device("cpu")                      # doctest: +SKIP
device(type='cpu')
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["resolve_device"]


def resolve_device(name: str) -> "torch.device":
    """The :class:`torch.device` a ``--device`` value names.

    Parameters
    ----------
    name : str
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when
        available, else CPU).

    Returns
    -------
    torch.device

    Raises
    ------
    ParameterError
        An unknown name, or CUDA asked for where there is none.
    """
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ParameterError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device 'cuda' asked for but CUDA is not available here; use --device cpu")
    return device
