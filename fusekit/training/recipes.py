"""Training recipes: the rhythm of meta and fusion updates, learning rates and loss ramps.

Two recipes drive :class:`~fusekit.training.trainer.Trainer`:

``"fusekit"``
    Short cycles of ``meta_steps`` meta steps and ``fusion_steps`` fusion
    steps; Adam on P's normalised meta-gradient; linear warm-up and cosine
    decay of the learning rates; a linear ramp of the gradient-term weight.
    Made for short runs and fine-tuning.

``"authors"``
    The schedule of ReFusion's released training code as far as public
    sources show it (``REFUSION.md``, "Training loop: the authors' recipe";
    H. Bai et al., IJCV 2024, arXiv:2312.07943). Training runs in epochs;
    each epoch is a *meta phase* of ``meta_batches`` outer batches (each
    preceded by its inner batch) against one fixed F and R, then a *fusion
    phase* of ``fusion_batches`` Adam steps of F and R with P frozen. P is
    moved by normalised SGD, ``p <- p - lr_F * s * g / max|g|`` (``lr_F``
    F's current learning rate, ``s`` the ``proposer_step_scale``, 1 in the
    authors' code) once per window of ``accumulate`` outer batches, each
    outer loss divided by ``accumulate``. With ``direct_term`` P's update
    also carries the direct gradient of the inner fusion loss
    ``dL_fuse/dP`` (the authors' code never clears it between the inner
    and the outer backward). The learning rate of F and R falls tenfold
    every ``decay_every`` epochs; the gradient-term weight is
    ``lambda_grad * (epoch + 1) / epochs``. With a fixed (not learnable)
    proposer there is no meta phase, so both arms of a learned-vs-fixed
    comparison make the same ``epochs * fusion_batches`` fuser updates.

The module holds only schedule arithmetic and P's update rule; the
networks and losses live in the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

__all__ = ["RECIPES", "EpochSchedule", "normalised_sgd_step"]

#: Names accepted by ``TrainConfig.recipe`` / ``fusekit train --recipe``.
RECIPES = ("fusekit", "authors")


@dataclass(frozen=True)
class EpochSchedule:
    """Step arithmetic of the ``"authors"`` recipe.

    A *step* is one meta step (an inner and an outer batch) or one fusion
    step, numbered from 0 over the whole run.

    Parameters
    ----------
    epochs : int
        Number of epochs.
    meta_batches : int
        Outer batches per epoch's meta phase (0 for a fixed proposer).
    fusion_batches : int
        Fusion steps per epoch.
    decay_every : int
        Divide the learning rate by 10 every this many epochs (0: never).
    accumulate : int
        Outer batches whose meta-gradients are summed before P moves.

    Examples
    --------
    >>> s = EpochSchedule(epochs=2, meta_batches=3, fusion_batches=5, decay_every=1, accumulate=2)
    >>> s.total_steps, s.phase_of(2), s.phase_of(3), s.lr_factor(8)
    (16, 'meta', 'fusion', 0.1)
    >>> [s.ends_window(k) for k in range(3)]
    [False, True, True]
    """

    epochs: int
    meta_batches: int
    fusion_batches: int
    decay_every: int = 10
    accumulate: int = 2

    @property
    def epoch_length(self) -> int:
        """Steps per epoch (meta phase plus fusion phase)."""
        return self.meta_batches + self.fusion_batches

    @property
    def total_steps(self) -> int:
        """Steps of the whole run."""
        return self.epochs * self.epoch_length

    def epoch_of(self, step: int) -> int:
        """0-based epoch of 0-based ``step``."""
        return min(step // self.epoch_length, self.epochs - 1)

    def phase_of(self, step: int) -> str:
        """``"meta"`` or ``"fusion"``."""
        return "meta" if step % self.epoch_length < self.meta_batches else "fusion"

    def ends_window(self, step: int) -> bool:
        """Whether P moves after this meta step (last of its accumulation window or of the phase)."""
        k = step % self.epoch_length
        return (k + 1) % self.accumulate == 0 or k == self.meta_batches - 1

    def lr_factor(self, step: int) -> float:
        """Multiplier of the peak learning rate: ``0.1 ** (epoch // decay_every)``."""
        if self.decay_every <= 0:
            return 1.0
        return 0.1 ** (self.epoch_of(step) // self.decay_every)

    def lambda_factor(self, step: int) -> float:
        """Multiplier of the gradient-term weight: ``(epoch + 1) / epochs``."""
        return (self.epoch_of(step) + 1) / self.epochs


@torch.no_grad()
def normalised_sgd_step(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor | None],
                        step_size: float) -> float:
    """Move ``params`` by ``-step_size * g / max|g|`` (the largest entry over all of them).

    Parameters
    ----------
    params : sequence of Tensor
        Parameters updated in place.
    grads : sequence of Tensor or None
        Their gradients (``None``: unused parameter, not moved).
    step_size : float
        Largest change of any single parameter.

    Returns
    -------
    float
        ``max|g|`` before normalisation (0 when there is no gradient; then
        nothing moves). Nothing moves either when ``max|g|`` is below float32's
        smallest normal number (~1.2e-38): such a gradient (a saturated
        proposer's) carries rounding, not a direction, and ``step_size / max|g|``
        would overflow float32.
    """
    scale = max((float(g.abs().max()) for g in grads if g is not None), default=0.0)
    if scale >= torch.finfo(torch.float32).tiny:
        for p, g in zip(params, grads):
            if g is not None:
                p.sub_(g, alpha=step_size / scale)
    return scale
