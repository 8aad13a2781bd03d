"""Built-in plugin registering the hand-made ``fixed`` loss proposer."""

from __future__ import annotations

from ..hookspecs import Register, hookimpl


@hookimpl
def register_loss_proposers(register: Register) -> None:
    from .fixed import FixedLossProposer

    register(FixedLossProposer)
