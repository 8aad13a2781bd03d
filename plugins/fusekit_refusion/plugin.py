"""fusekit plugin hooks of the ReFusion package (registration only, no torch import)."""

from __future__ import annotations

from fusekit.hookspecs import hookimpl


@hookimpl
def register_fusers(register):
    """Register the ``refusion`` fuser."""
    from .fuser import ReFusion

    register(ReFusion)


@hookimpl
def register_loss_proposers(register):
    """Register the ``refusion`` loss proposal network (meta-learned loss)."""
    from .loss_proposer import ReFusionLossProposer

    register(ReFusionLossProposer)


@hookimpl
def register_reconstructors(register):
    """Register the ``refusion`` reconstruction network."""
    from .reconstructor import ReFusionReconstructor

    register(ReFusionReconstructor)
