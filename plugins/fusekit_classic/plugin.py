"""Registers the classic methods through fusekit's plugin hooks.

This module only holds hook implementations; the method modules are
imported when the hook runs (numpy/scipy/PyWavelets only, never torch).
"""

from fusekit.hookspecs import hookimpl


@hookimpl
def register_fusers(register):
    """Register every classic fuser class (see :data:`fusekit_classic.METHODS`)."""
    from . import METHODS

    for cls in METHODS:
        register(cls)
