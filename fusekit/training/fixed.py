"""The hand-made ``fixed`` loss proposer: ReFusion's loss without meta-learning.

Deep fusion methods before ReFusion trained with a fixed loss that keeps, at
every pixel, the brighter source's intensity and the larger source gradient
(e.g. SwinFusion, J. Ma et al., IEEE/CAA J. Autom. Sinica 2022; CDDFuse,
Z. Zhao et al., CVPR 2023). Written in ReFusion's weighted form (see
:func:`fusekit.training.losses.fusion_loss`), that is one-hot weights:

* gradient weights: 1 for the source with the larger Sobel magnitude, 0 for
  the other, on every task (the sharper / more detailed source wins);
* intensity weights: ``"max"`` -- 1 for the brighter source (IVIF, MIF: hot
  targets, bone, tracer uptake are bright); ``"mean"`` -- 0.5 / 0.5 (MFIF:
  both sources show the same intensities; MEIF: the brighter source is the
  over-exposed one, so the average exposure is the neutral target).

``intensity="auto"`` (the default) picks ``"mean"`` for ``mfif`` and
``meif`` and ``"max"`` otherwise. With these weights the loss has no
learnable part, so the trainer skips the meta phase: ``fusekit train
--loss-proposer fixed`` trains the same network with the classic loss, and
comparing it to ``--loss-proposer refusion`` tests the paper's claim.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ..errors import ParameterError
from ..interfaces import TASKS, LossProposer

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["FixedLossProposer"]

_MODES = ("auto", "max", "mean")


class FixedLossProposer(LossProposer):
    """Max-intensity (or mean) and max-gradient selection weights.

    Parameters
    ----------
    intensity : {"auto", "max", "mean"}
        How the intensity weights are made (see the module docstring).
    task : str, optional
        The task being trained; decides ``"auto"``.

    Examples
    --------
    >>> net = FixedLossProposer(task="ivif").build_network()      # doctest: +SKIP
    >>> w_int, w_grad = net(sources)  # N x 2 x H x W each, one-hot over sources  # doctest: +SKIP
    """

    name: ClassVar[str] = "fixed"
    learnable: ClassVar[bool] = False
    summary: ClassVar[str] = "hand-made loss: max gradient, max (IVIF/MIF) or mean (MFIF/MEIF) intensity"

    def __init__(self, *, intensity: str = "auto", task: str | None = None) -> None:
        if intensity not in _MODES:
            raise ParameterError(f"intensity must be one of {', '.join(_MODES)}, got {intensity!r}")
        if task is not None and task not in TASKS:
            raise ParameterError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
        if intensity == "auto":
            intensity = "mean" if task in ("mfif", "meif") else "max"
        self.intensity = intensity
        self.task = task

    def build_network(self) -> "torch.nn.Module":
        from .fixed_net import FixedWeights

        return FixedWeights(intensity=self.intensity)
