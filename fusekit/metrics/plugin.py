"""Built-in plugin registering fusekit's metrics through the public hook."""

from __future__ import annotations

from typing import Any, Callable

from ..hookspecs import hookimpl


@hookimpl
def register_metrics(register: Callable[[Any], None]) -> None:
    """Register EN, SD, SF, AG, MI, SCD, VIF, Qabf, SSIM, PSNR, CC and Nabf."""
    from .catalog import BUILTIN_METRICS

    for metric in BUILTIN_METRICS:
        register(metric)
