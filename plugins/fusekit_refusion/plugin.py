"""fusekit plugin hooks of the ReFusion package (registration only, no torch import)."""

from __future__ import annotations

from fusekit.hookspecs import hookimpl


@hookimpl
def register_fusers(register):
    """Register the ``refusion`` fuser."""
    from .fuser import ReFusion

    register(ReFusion)
