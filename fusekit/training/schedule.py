"""When each step is a meta or a fusion step, and its learning rates and gradient-term weight.

The ``"fusekit"`` recipe's schedule lives here: cycles of ``meta_steps`` meta
steps and ``fusion_steps`` fusion steps, a linear warm-up and cosine decay of
the learning rates (or constant rates), and a linear ramp of the gradient-term
weight ``lambda_grad``, all following the run's progress (:func:`progress`).
The ``"authors"`` recipe's epochs are :class:`~fusekit.training.recipes.EpochSchedule`;
:func:`phase_of` and :func:`rates` answer for either. (No torch here.)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import TrainConfig
    from .recipes import EpochSchedule

__all__ = ["progress", "lr_factor", "lambda_at", "epoch_schedule", "phase_of", "rates"]


def progress(c: TrainConfig, step: int, elapsed_s: float = 0.0) -> float:
    """Fraction of training done, in [0, 1]: ``step / steps``, or with
    ``time_schedule`` and ``max_minutes`` the larger of that and the
    fraction of the time budget spent (so a budgeted run still completes
    its learning-rate decay and gradient ramp)."""
    frac = step / c.steps
    if c.time_schedule and c.max_minutes:
        frac = max(frac, elapsed_s / (c.max_minutes * 60))
    return min(1.0, frac)


def lr_factor(c: TrainConfig, step: int, progress: float | None = None) -> float:
    """Multiplier of the peak learning rates at 0-based ``step`` (and ``progress``)."""
    t = step / c.steps if progress is None else progress
    warmup = min(c.warmup_steps, c.steps // 10)
    warm = (step + 1) / warmup if warmup and step < warmup else 1.0
    if c.lr_schedule == "constant":
        return warm
    return warm * (c.lr_min_ratio + (1 - c.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def lambda_at(c: TrainConfig, step: int, progress: float | None = None) -> float:
    """Gradient-term weight (linear ramp over ``ramp_fraction``, then constant)."""
    t = step / c.steps if progress is None else progress
    if c.ramp_fraction <= 0 or t >= c.ramp_fraction:
        return c.lambda_grad
    return c.lambda_grad_start + (c.lambda_grad - c.lambda_grad_start) * t / c.ramp_fraction


def epoch_schedule(c: TrainConfig, learnable: bool, items: int) -> EpochSchedule | None:
    """The ``"authors"`` recipe's epochs over ``items`` training items (``None`` for ``"fusekit"``).

    Sets ``c.steps`` to the run's length. A proposer that is not learnable
    has no meta phase.
    """
    if c.recipe != "authors":
        return None
    from .recipes import EpochSchedule

    schedule = EpochSchedule(epochs=c.epochs, meta_batches=c.meta_batches if learnable else 0,
                             fusion_batches=c.fusion_batches or -(-items // c.batch_size),
                             decay_every=c.decay_every, accumulate=c.accumulate)
    c.steps = schedule.total_steps
    return schedule


def phase_of(c: TrainConfig, schedule: EpochSchedule | None, learnable: bool, step: int) -> str:
    """``"meta"`` or ``"fusion"`` for 0-based ``step``."""
    if schedule is not None:
        return schedule.phase_of(step)
    if not learnable or c.meta_steps == 0:
        return "fusion"
    return "meta" if step % (c.meta_steps + c.fusion_steps) < c.meta_steps else "fusion"


def rates(c: TrainConfig, schedule: EpochSchedule | None, step: int, spent_s: float) -> tuple[float, float, float]:
    """Learning rate of F and R, of P (``"fusekit"`` recipe), and ``lambda_grad`` at 0-based ``step``.

    ``spent_s`` is the wall time spent so far (it counts with ``time_schedule``).
    """
    if schedule is not None:
        factor = schedule.lr_factor(step)
        return c.lr * factor, c.lr_proposer * factor, c.lambda_grad * schedule.lambda_factor(step)
    frac = progress(c, step, spent_s)
    factor = lr_factor(c, step, frac)
    return c.lr * factor, c.lr_proposer * factor, lambda_at(c, step, frac)
