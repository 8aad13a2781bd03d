"""Built-in plugin registering fusekit's metrics through the public hook."""

from __future__ import annotations

from typing import Any, Callable

from ..hookspecs import hookimpl


@hookimpl
def register_metrics(register: Callable[[Any], None]) -> None:
    """Register the built-in metrics (:data:`fusekit.metrics.catalog.BUILTIN_METRICS`)."""
    from .catalog import BUILTIN_METRICS

    for metric in BUILTIN_METRICS:
        register(metric)
