"""The settings of a training run (:class:`TrainConfig`), their validation, and their help text.

``TrainConfig`` is the one source of the settings' defaults and descriptions:
``fusekit train`` builds its options from its fields and docstring
(:func:`field_help`). Importing this module does not import torch.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields

from ..errors import ParameterError

__all__ = ["TrainConfig", "LEARN_WEIGHTS", "UNTIL_TIME_UP", "RECIPE_DEFAULTS", "OBJECTIVE_SETTINGS", "PROPOSER_SETTINGS",
           "field_help"]

#: What a learnable loss proposer may set (``TrainConfig.learn_weights``).
LEARN_WEIGHTS = ("both", "intensity")

#: Settings that change the loss being optimised: a resumed run must keep them.
OBJECTIVE_SETTINGS = ("learn_weights", "rec_reduction", "rec_error", "recipe", "direct_term", "proposer_decay",
                      "symmetric_proposer", "symmetric_mean", "proposer_temperature", "meta_detail",
                      "meta_detail_target")

#: Settings of how a learnable loss proposer learns; a hand-made one (``--loss-proposer fixed``) has no use
#: for them, and the trainer warns when one is set away from its default (:meth:`TrainConfig.proposer_only_changes`).
PROPOSER_SETTINGS = ("lr_proposer", "proposer_warmup", "warmup_smoothing", "warmup_lr", "learn_weights", "direct_term",
                     "proposer_step_scale", "proposer_decay", "symmetric_proposer", "symmetric_mean",
                     "proposer_temperature", "meta_detail", "meta_detail_target")

#: ``steps`` of a run that only its time budget ends (``fusekit train --time-schedule --max-minutes M``
#: without ``--steps``); its progress bar counts steps without a total.
UNTIL_TIME_UP = 10**9

#: Defaults ``fusekit train`` uses per recipe where they differ from the fields' (the authors' values).
RECIPE_DEFAULTS = {"fusekit": {}, "authors": {"batch_size": 2, "lr": 1e-4}}


@dataclass
class TrainConfig:
    """Settings of a training run (all have laptop-CPU defaults).

    F is the fuser's network, P the loss proposer's, R the reconstructor's
    (:mod:`fusekit.training.trainer`). ``fusekit train`` takes each
    description below as the help of its option.

    Attributes
    ----------
    task : str
        ``ivif``, ``mif``, ``mfif`` or ``meif``.
    steps : int
        Total training steps (meta steps and fusion steps together).
    batch_size : int
        Patch pairs per batch (doubled by the swapped-order copy).
    patch_size : int
        Patch side in pixels.
    lr : float
        Peak learning rate (Adam) of fuser and reconstructor; also their inner (virtual) step size.
    lr_proposer : float
        Peak learning rate of the loss proposer (Adam on its normalised meta-gradient).
    lr_schedule : {"cosine", "constant"}
        Cosine decay to lr x lr_min_ratio after a linear warm-up of warmup_steps (at most a tenth of the
        steps), or constant.
    lr_min_ratio : float
        Final learning rate of the cosine decay, as a fraction of the peak.
    warmup_steps : int
        Steps of the linear learning-rate warm-up.
    lambda_grad : float
        Final weight of the gradient terms of the fusion loss.
    lambda_grad_start : float
        Initial weight of the gradient terms.
    ramp_fraction : float
        Fraction of the steps over which the gradient weight ramps up (0: none).
    meta_steps : int
        Meta steps per cycle.
    fusion_steps : int
        Fusion steps per cycle.
    swap : bool
        Feed each pair in both source orders.
    augment : bool
        Random flips and 90-degree rotations of patches.
    min_std : float
        Patches whose two sources both have a standard deviation below this
        (intensities in [0, 1]) are skipped.
    seed : int
        Seeds network initialisation and patch sampling.
    device : str
        cpu, cuda, cuda:N or auto.
    checkpoint_every : int
        Save a checkpoint every N steps (0: only at the end).
    max_minutes : float or None
        Stop cleanly (checkpoint and weights saved) after this much wall time.
    time_schedule : bool
        With max_minutes: decay the learning rate and ramp the gradient terms over the time budget
        (whichever of steps and time has progressed further). Not bit-reproducible.
    proposer_warmup : int
        Steps fitting a learnable loss proposer to the hand-made 'fixed' loss before training
        (its weights softened by warmup_smoothing), so meta-learning starts from the classic loss.
    warmup_smoothing : float
        Weight given to the non-selected source in the warm-up targets, in [0, 0.5); keeps the
        proposer's softmax away from saturation so the meta-gradient can still move it.
    warmup_lr : float
        Adam learning rate of the proposer warm-up.
    learn_weights : {"both", "intensity"}
        Weights a learnable loss proposer sets: both (ReFusion), or intensity only (gradient weights
        from the fixed loss; an ablation).
    rec_reduction : {"max", "mean"}
        How the reconstruction loss (the proposer's meta-objective) combines the sources' errors at a
        pixel: the worse one (ReFusion) or their mean (an ablation).
    rec_error : {"squared", "absolute"}
        How the reconstruction loss measures one error: squared (ReFusion) or absolute (an ablation:
        squared errors alone make an even blend cheaper to rebuild from than a selection).
    recipe : {"fusekit", "authors"}
        Update rhythm: 'fusekit' (short meta/fusion cycles, Adam on P,
        cosine decay) or 'authors' (ReFusion's released recipe: epochs of a meta phase then a fusion
        phase, P moved by normalised SGD, tenfold decay every decay_every epochs, gradient term ramped per
        epoch; steps is set from the epochs, and meta_steps, fusion_steps, lr_proposer, lr_schedule,
        warmup_steps, ramp_fraction and lambda_grad_start do not apply).
    epochs : int
        authors recipe: epochs.
    meta_batches : int
        authors recipe: outer batches per meta phase.
    fusion_batches : int
        authors recipe: fusion steps per epoch (0: one pass over the training items).
    decay_every : int
        authors recipe: divide the learning rate by 10 every N epochs (0: never).
    accumulate : int
        authors recipe: outer batches per update of the loss proposer.
    direct_term : bool
        authors recipe: add the inner fusion loss's own gradient dL_fuse/dP to the proposer's
        meta-gradient, as the authors' code does.
    proposer_step_scale : float
        authors recipe: proposer step = this x the fuser's learning rate (1 in the authors' code; a
        shortened schedule raises it so that P can travel as far in fewer updates).
    proposer_decay : bool
        authors recipe: the proposer's step decays with the fuser's learning rate (the authors' code),
        or stays at the peak rate (a design change: P keeps learning while F anneals).
    symmetric_proposer : bool
        Make the learned loss proposer's weights independent of the sources' order
        (:class:`~fusekit.training.symmetric.OrderEquivariant`; it then cannot collapse to 'intensity
        from the first input, gradient from the second').
    symmetric_mean : {"arithmetic", "geometric", "logit"}
        How ``--symmetric-proposer`` averages the weights over the sources' orders: arithmetic (the
        weights themselves), or geometric (their logarithms, i.e. the softmax logits, renormalised: a
        preference for an input *slot* then cancels exactly and gets no gradient, so P can only learn
        from content; a design change). ``logit`` is the geometric mean taken from P's unfloored
        log-weights, so a slot preference that drifts past the 1e-30 floor of the logarithm cannot freeze P.
    proposer_temperature : float
        Divide a learnable proposer's log-weights by this before renormalising over the sources
        (:class:`~fusekit.training.sharpen.Sharpened`; below 1 a small preference becomes a near-selection,
        a design change). 1 leaves the weights as the proposer makes them.
    meta_detail : float
        Weight of a detail term added to the proposer's meta-objective: the outer batch's fused image,
        made by F after its virtual step, is also scored by the hand-made max-gradient term (at each
        pixel the larger Sobel magnitude of the sources). P is then rewarded for loss weights that let F
        keep the sharper or better-exposed detail, which the reconstruction objective alone does not ask
        for (a design change). 0 leaves ReFusion's reconstruction objective alone.
    meta_detail_target : {"max", "focus"}
        What ``--meta-detail`` scores against: 'max', the hand-made max-gradient term (no image reaches
        it where the sources differ, so it rewards switching between them); or 'focus', an image the
        fused one can equal: at each pixel the source with the larger gradient energy over a 7x7
        neighbourhood, compared by signed Sobel gradients (a design change).
    """

    task: str
    steps: int = 1500
    batch_size: int = 4
    patch_size: int = 48
    lr: float = 1e-3
    lr_proposer: float = 1e-3
    lr_schedule: str = "cosine"
    lr_min_ratio: float = 0.02
    warmup_steps: int = 50
    lambda_grad: float = 1.0
    lambda_grad_start: float = 0.1
    ramp_fraction: float = 0.3
    meta_steps: int = 5
    fusion_steps: int = 20
    swap: bool = True
    augment: bool = True
    min_std: float = 0.02
    seed: int = 0
    device: str = "cpu"
    checkpoint_every: int = 500
    max_minutes: float | None = None
    time_schedule: bool = False
    proposer_warmup: int = 0
    warmup_smoothing: float = 0.1
    warmup_lr: float = 1e-3
    learn_weights: str = "both"
    rec_reduction: str = "max"
    rec_error: str = "squared"
    recipe: str = "fusekit"
    epochs: int = 50
    meta_batches: int = 600
    fusion_batches: int = 0
    decay_every: int = 10
    accumulate: int = 2
    direct_term: bool = True
    proposer_step_scale: float = 1.0
    proposer_decay: bool = True
    symmetric_proposer: bool = False
    symmetric_mean: str = "arithmetic"
    proposer_temperature: float = 1.0
    meta_detail: float = 0.0
    meta_detail_target: str = "max"

    def proposer_only_changes(self) -> list[str]:
        """Names of the :data:`PROPOSER_SETTINGS` set away from their defaults, in that order.

        Returns
        -------
        list of str
            Field names (``meta_detail``, ...); empty when a hand-made proposer loses nothing.
        """
        defaults = {f.name: f.default for f in fields(self)}
        return [name for name in PROPOSER_SETTINGS if getattr(self, name) != defaults[name]]

    def validate(self) -> None:
        """Raise :class:`ParameterError` for values out of range."""
        from .detail import DETAIL_TARGETS
        from .losses import REC_ERRORS, REC_REDUCTIONS
        from .symmetric import SYMMETRIC_MEANS
        from .recipes import RECIPES

        positive = {"steps": self.steps, "batch_size": self.batch_size, "lr": self.lr,
                    "lr_proposer": self.lr_proposer, "fusion_steps": self.fusion_steps,
                    "proposer_temperature": self.proposer_temperature}
        for key, value in positive.items():
            if not (value > 0 and math.isfinite(value)):
                raise ParameterError(f"{key.replace('_', '-')} must be a positive finite number, got {value}")
        if not (math.isfinite(self.lambda_grad) and math.isfinite(self.lambda_grad_start)):
            raise ParameterError(f"lambda-grad must be finite, got {self.lambda_grad}")
        if self.patch_size < 8:
            raise ParameterError(f"patch-size must be at least 8 pixels, got {self.patch_size}")
        if self.meta_steps < 0 or self.checkpoint_every < 0 or self.warmup_steps < 0:
            raise ParameterError("meta-steps, checkpoint-every and warmup-steps must be >= 0")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ParameterError(f"lr schedule must be 'cosine' or 'constant', got {self.lr_schedule!r}")
        if not 0 <= self.ramp_fraction <= 1 or not 0 < self.lr_min_ratio <= 1:
            raise ParameterError("ramp-fraction must be in [0, 1] and lr-min-ratio in (0, 1]")
        if self.lambda_grad < 0 or self.lambda_grad_start < 0:
            raise ParameterError("lambda-grad values must be >= 0")
        if self.proposer_warmup < 0 or not 0 <= self.warmup_smoothing < 0.5 or not self.warmup_lr > 0:
            raise ParameterError("proposer-warmup must be >= 0, warmup smoothing in [0, 0.5) and warmup lr > 0")
        if not (self.meta_detail >= 0 and math.isfinite(self.meta_detail)):
            raise ParameterError(f"meta-detail must be a finite number >= 0, got {self.meta_detail}")
        if self.meta_detail_target not in DETAIL_TARGETS:
            raise ParameterError(f"meta-detail-target must be one of {', '.join(DETAIL_TARGETS)}, "
                                 f"got {self.meta_detail_target!r}")
        if self.learn_weights not in LEARN_WEIGHTS:
            raise ParameterError(f"learn-weights must be one of {', '.join(LEARN_WEIGHTS)}, "
                                 f"got {self.learn_weights!r}")
        if self.symmetric_mean not in SYMMETRIC_MEANS:
            raise ParameterError(f"symmetric-mean must be one of {', '.join(SYMMETRIC_MEANS)}, "
                                 f"got {self.symmetric_mean!r}")
        if self.rec_reduction not in REC_REDUCTIONS:
            raise ParameterError(f"rec-reduction must be one of {', '.join(REC_REDUCTIONS)}, "
                                 f"got {self.rec_reduction!r}")
        if self.rec_error not in REC_ERRORS:
            raise ParameterError(f"rec-error must be one of {', '.join(REC_ERRORS)}, got {self.rec_error!r}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ParameterError(f"max-minutes must be positive, got {self.max_minutes}")
        if self.recipe not in RECIPES:
            raise ParameterError(f"recipe must be one of {', '.join(RECIPES)}, got {self.recipe!r}")
        if self.recipe == "authors":
            if self.epochs < 1 or self.meta_batches < 0 or self.fusion_batches < 0 or self.accumulate < 1:
                raise ParameterError("epochs and accumulate must be >= 1, meta-batches and fusion-batches >= 0")
            if self.decay_every < 0 or not (self.proposer_step_scale > 0 and math.isfinite(self.proposer_step_scale)):
                raise ParameterError("decay-every must be >= 0 and proposer-step-scale positive")
            if self.time_schedule:
                raise ParameterError("--time-schedule belongs to the fusekit recipe; the authors recipe "
                                     "schedules by epochs (use --max-minutes alone to cap its time)")
            if self.proposer_warmup:
                raise ParameterError("the authors recipe starts P from random weights; drop --proposer-warmup")


def field_help() -> dict[str, tuple[str, str]]:
    """Each :class:`TrainConfig` field's type and description from its docstring, as plain one-line text.

    Examples
    --------
    >>> field_help()["recipe"][0]
    '{"fusekit", "authors"}'
    """
    section = (TrainConfig.__doc__ or "").split("----------\n", 1)[1]
    out: dict[str, tuple[str, str]] = {}
    for entry in re.split(r"\n    (?=\w+ : )", "\n" + section):
        head, _, body = entry.strip().partition("\n")
        if " : " in head:
            name, kind = head.split(" : ")
            text = re.sub(r":\w+:`~?(?:[\w.]+\.)?(\w+)`", r"\1", " ".join(body.split()))  # :class:`~a.B` -> B
            out[name] = (kind, text.replace("``", ""))
    return out
