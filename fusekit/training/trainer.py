"""The alternating meta-learning schedule of ReFusion, generic over its three parts.

Three networks train in turn (H. Bai et al., "ReFusion: Learning Image
Fusion from Reconstruction with Learnable Loss via Meta-Learning", IJCV 2024,
arXiv:2312.07943):

* the fusion network F (any :class:`~fusekit.interfaces.TorchFuser`),
* the loss proposal network P (any :class:`~fusekit.interfaces.LossProposer`),
  whose pixel-wise weights define ``L_fuse``,
* the reconstruction network R (any :class:`~fusekit.interfaces.Reconstructor`),
  which rebuilds the sources from the fused image (``L_rec``).

Training runs in cycles of ``meta_steps`` meta steps followed by
``fusion_steps`` fusion steps:

**Meta step** (updates P only). On a batch, P's weights (not detached) give
``L_fuse`` of F; one *virtual* SGD step ``theta' = theta - lr * dL_fuse/dtheta``
is taken with the graph kept back to P (:func:`torch.func.functional_call`
runs F with ``theta'``, no copy of the network is made). R takes a virtual
step on ``L_rec`` of the detached fused image. On a fresh batch, F with
``theta'`` fuses, R with its virtual weights reconstructs, and ``L_rec`` is
back-propagated into P only. The meta-gradient is scaled by the inner
learning rate and therefore tiny; it is divided by its largest absolute entry
before an Adam step, so the step size is set by P's learning rate alone.

**Fusion step** (P frozen). F is trained on ``L_fuse`` with P's (detached)
weights, R on ``L_rec`` of the detached fused image, both with Adam.

A proposer with ``learnable = False`` (the hand-made ``fixed`` loss) skips
meta steps. The gradient weight ``lambda_grad`` ramps linearly from
``lambda_grad_start`` to ``lambda_grad`` over the first ``ramp_fraction`` of
training; learning rates follow a linear warm-up and a cosine decay (or stay
constant). Every random draw comes from the seed, so two runs with the same
seed, data and device give the same weights, and a run resumed from a
checkpoint continues exactly as if it had not stopped.

With a :class:`~fusekit.training.distributed.Group` of several processes
(``torchrun``), every gradient is averaged over the group before each
optimiser step, including P's meta-gradient, so all processes stay
identical; each draws its own patches.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import platform
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.func import functional_call

from .. import __version__
from ..devices import resolve_device as _resolve_device
from ..errors import InputError, ParameterError, WeightsError
from ..interfaces import LossProposer, Reconstructor, TorchFuser
from ..io import atomic_file
from .data import PatchSampler, swap_augment
from .distributed import Group
from .losses import REC_REDUCTIONS, fusion_loss, reconstruction_loss
from .recipes import RECIPES, EpochSchedule, normalised_sgd_step

__all__ = ["TrainConfig", "TrainResult", "Trainer", "TrainingInterrupted", "UNTIL_TIME_UP", "save_weights",
           "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION"]

#: Identifies a fusekit training checkpoint, and the version of its layout.
CHECKPOINT_FORMAT = "fusekit-train-checkpoint"
CHECKPOINT_VERSION = 1

#: What a learnable loss proposer may set (``TrainConfig.learn_weights``).
LEARN_WEIGHTS = ("both", "intensity")

#: Settings that change the loss being optimised: a resumed run must keep them.
_OBJECTIVE_SETTINGS = ("learn_weights", "rec_reduction", "recipe", "direct_term", "proposer_decay",
                       "symmetric_proposer")

_LOG_COLUMNS = ("step", "phase", "lr", "lambda_grad", "fuse", "fuse_int", "fuse_grad", "rec", "meta_rec",
                "meta_gnorm", "direct_gnorm", "elapsed_s")


@dataclass
class TrainConfig:
    """Settings of a training run (all have laptop-CPU defaults).

    Attributes
    ----------
    task : str
        ``ivif``, ``mif``, ``mfif`` or ``meif``.
    steps : int
        Total iterations (meta steps and fusion steps together).
    batch_size : int
        Patch pairs per batch, before the swapped-order copy doubles it.
    patch_size : int
        Patch side in pixels.
    lr : float
        Peak Adam learning rate of F and R; also the inner (virtual) step size.
    lr_proposer : float
        Peak Adam learning rate of P (on the normalised meta-gradient).
    lr_schedule : {"cosine", "constant"}
        Cosine decay to ``lr * lr_min_ratio`` after a linear warm-up of
        ``warmup_steps`` (at most a tenth of ``steps``), or constant.
    lambda_grad, lambda_grad_start : float
        Final and initial weight of the gradient terms of ``L_fuse``.
    ramp_fraction : float
        Fraction of ``steps`` over which ``lambda_grad`` ramps up (0: none).
    meta_steps, fusion_steps : int
        Length of the two phases of a cycle.
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
        ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
    checkpoint_every : int
        Save a checkpoint every this many steps (0: only at the end).
    max_minutes : float or None
        Stop cleanly (checkpoint saved) after this much wall time.
    time_schedule : bool
        With ``max_minutes``: learning-rate decay and gradient ramp follow
        the larger of step and time progress (see :meth:`progress`). Runs are
        then no longer bit-reproducible (they depend on speed). The run
        still ends at ``steps`` if that comes first, so a run meant to fill
        the time budget sets ``steps`` out of reach (:data:`UNTIL_TIME_UP`,
        what the command line does when ``--steps`` is not given).
    proposer_warmup : int
        Before step 1, fit a learnable loss proposer for this many steps to
        the hand-made ``fixed`` weights of the task (softened to
        ``1 - warmup_smoothing`` / ``warmup_smoothing``), so meta-learning
        starts from the classic loss instead of a random one (0: off).
    warmup_smoothing : float
        Weight given to the non-selected source in the warm-up targets,
        in [0, 0.5); keeps the proposer's softmax away from saturation so
        the meta-gradient can still move it.
    warmup_lr : float
        Adam learning rate of the proposer warm-up.
    learn_weights : {"both", "intensity"}
        Which of its weights a learnable proposer sets: ``"both"`` (ReFusion),
        or only the intensity weights, the gradient weights then being the
        hand-made ``fixed`` loss's (an ablation: it keeps the fixed loss's
        edge selection while meta-learning the intensity split).
    rec_reduction : {"max", "mean"}
        How ``L_rec`` (the reconstructor's loss and P's meta-objective)
        combines the sources' errors at a pixel: the worse-rebuilt source
        (``"max"``, ReFusion) or their mean (an ablation).
    recipe : {"fusekit", "authors"}
        The update rhythm (:mod:`fusekit.training.recipes`). With
        ``"authors"`` the run is ``epochs`` epochs long (``steps`` is set
        from them), and ``meta_steps``, ``fusion_steps``, ``lr_proposer``,
        ``lr_schedule``, ``warmup_steps``, ``ramp_fraction`` and
        ``lambda_grad_start`` do not apply.
    epochs, meta_batches, fusion_batches : int
        ``"authors"`` recipe: epochs, outer batches of each meta phase and
        fusion steps of each fusion phase (0: one pass over the training
        items, ``ceil(items / batch_size)``).
    decay_every : int
        ``"authors"`` recipe: divide the learning rate by 10 every this many
        epochs (0: never).
    accumulate : int
        ``"authors"`` recipe: outer batches per update of P.
    direct_term : bool
        ``"authors"`` recipe: add the direct gradient ``dL_fuse/dP`` of the
        inner batches to P's meta-gradient (as the authors' code does).
    proposer_step_scale : float
        ``"authors"`` recipe: P's normalised SGD step is this times F's
        current learning rate (1 in the authors' code; a shortened schedule
        raises it so that P can travel as far in fewer updates).
    symmetric_proposer : bool
        Wrap a learnable proposer in
        :class:`~fusekit.training.symmetric.OrderEquivariant`, so its weights
        follow the sources' content, never their order (a design change).
    proposer_decay : bool
        ``"authors"`` recipe: P's step follows F's decaying learning rate
        (the authors' code); off, it stays at the peak rate times
        ``proposer_step_scale`` (a design change: P keeps learning while F
        anneals).
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

    def validate(self) -> None:
        """Raise :class:`ParameterError` for values out of range."""
        positive = {"steps": self.steps, "batch_size": self.batch_size, "lr": self.lr,
                    "lr_proposer": self.lr_proposer, "fusion_steps": self.fusion_steps}
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
        if self.learn_weights not in LEARN_WEIGHTS:
            raise ParameterError(f"learn-weights must be one of {', '.join(LEARN_WEIGHTS)}, "
                                 f"got {self.learn_weights!r}")
        if self.rec_reduction not in REC_REDUCTIONS:
            raise ParameterError(f"rec-reduction must be one of {', '.join(REC_REDUCTIONS)}, "
                                 f"got {self.rec_reduction!r}")
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

    # -- schedules ------------------------------------------------------------
    def progress(self, step: int, elapsed_s: float = 0.0) -> float:
        """Fraction of training done, in [0, 1]: ``step / steps``, or with
        ``time_schedule`` and ``max_minutes`` the larger of that and the
        fraction of the time budget spent (so a budgeted run still completes
        its learning-rate decay and gradient ramp)."""
        frac = step / self.steps
        if self.time_schedule and self.max_minutes:
            frac = max(frac, elapsed_s / (self.max_minutes * 60))
        return min(1.0, frac)

    def lr_factor(self, step: int, progress: float | None = None) -> float:
        """Multiplier of the peak learning rates at 0-based ``step`` (and ``progress``)."""
        t = step / self.steps if progress is None else progress
        warmup = min(self.warmup_steps, self.steps // 10)
        warm = (step + 1) / warmup if warmup and step < warmup else 1.0
        if self.lr_schedule == "constant":
            return warm
        return warm * (self.lr_min_ratio + (1 - self.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * t)))

    def lambda_at(self, step: int, progress: float | None = None) -> float:
        """Gradient-term weight (linear ramp over ``ramp_fraction``, then constant)."""
        t = step / self.steps if progress is None else progress
        if self.ramp_fraction <= 0 or t >= self.ramp_fraction:
            return self.lambda_grad
        return self.lambda_grad_start + (self.lambda_grad - self.lambda_grad_start) * t / self.ramp_fraction


#: ``steps`` of a run that only its time budget ends (``fusekit train --time-schedule --max-minutes M``
#: without ``--steps``); its progress bar counts steps without a total.
UNTIL_TIME_UP = 10**9


@dataclass
class TrainResult:
    """What :meth:`Trainer.run` returns.

    Attributes
    ----------
    step : int
        Steps completed (including those of resumed runs).
    elapsed_s : float
        Wall time of all sessions, seconds.
    stopped : str
        ``"done"`` (all steps), ``"time"`` (``max_minutes`` reached).
    losses : dict of str to float
        Mean losses over the last logged steps (``fuse``, ``rec``, ``meta_rec``).
    """

    step: int
    elapsed_s: float
    stopped: str
    losses: dict[str, float] = field(default_factory=dict)


class TrainingInterrupted(Exception):
    """Raised after Ctrl-C once the checkpoint is saved; ``.checkpoint`` says where."""

    def __init__(self, step: int, checkpoint: Path | None) -> None:
        self.step = step
        self.checkpoint = checkpoint
        where = f"checkpoint saved to {checkpoint}; continue with --resume {checkpoint}" if checkpoint else \
            "no checkpoint path was set, nothing saved"
        super().__init__(f"interrupted at step {step}; {where}")


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))


def save_weights(state: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, Any]) -> Path:
    """Write a state dict as safetensors, atomically (temporary file + rename).

    Parameters
    ----------
    state : dict of str to Tensor
        Network weights (copied to CPU).
    path : path
        Target ``.safetensors`` file.
    metadata : dict
        Stored as strings in the safetensors header (task, method, steps...).
    """
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous().clone() for k, v in state.items()}
    with atomic_file(path, what="weights") as tmp:
        save_file(tensors, str(tmp), metadata={k: str(v) for k, v in metadata.items()})
    return path


class Trainer:
    """Train a fuser with a loss proposer and a reconstructor.

    Parameters
    ----------
    fuser : TorchFuser
        Its :meth:`~fusekit.interfaces.TorchFuser.build_network` gives F
        (trained from scratch).
    proposer : LossProposer
        Gives P; ``learnable = False`` skips the meta phase.
    reconstructor : Reconstructor
        Gives R.
    sampler : PatchSampler
        Source of ``2 x P x P`` patch pairs in canonical order.
    config : TrainConfig
        Settings.
    names : dict of str to str, optional
        Registry names (``method``, ``loss_proposer``, ``reconstructor``),
        stored in checkpoints and checked on resume.
    checkpoint_path : path, optional
        Where checkpoints go (every ``checkpoint_every`` steps, at the end,
        on Ctrl-C and when the time budget ends).
    log_path : path, optional
        CSV file with one row of losses per step.
    progress : bool or None
        tqdm progress bar; ``None`` shows it only on a terminal.
    group : Group, optional
        Data-parallel group (:mod:`fusekit.training.distributed`); default a
        single process. Only rank 0 writes the log and checkpoints; CUDA
        runs use ``cuda:LOCAL_RANK``.

    Examples
    --------
    >>> trainer = Trainer(fuser, proposer, reconstructor, sampler,     # doctest: +SKIP
    ...                   TrainConfig(task="ivif", steps=100))
    >>> result = trainer.run()                                       # doctest: +SKIP
    >>> trainer.fuser_net.state_dict()                               # doctest: +SKIP
    """

    def __init__(self, fuser: TorchFuser, proposer: LossProposer, reconstructor: Reconstructor,
                 sampler: PatchSampler, config: TrainConfig, *, names: dict[str, str] | None = None,
                 checkpoint_path: str | Path | None = None, log_path: str | Path | None = None,
                 progress: bool | None = None, group: Group | None = None) -> None:
        config.validate()
        self.group = group or Group()
        if not isinstance(fuser, TorchFuser):
            raise ParameterError(f"method {type(fuser).__name__} is not a TorchFuser; only network "
                                 f"methods can be trained")
        self.config = config
        self.names = dict(names or {})
        self.names.setdefault("method", fuser.name)
        self.names.setdefault("loss_proposer", proposer.name)
        self.names.setdefault("reconstructor", reconstructor.name)
        self.sampler = sampler
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.log_path = Path(log_path) if log_path and self.group.is_main else None
        self.progress = progress if self.group.is_main else False
        self.device = _resolve_device(config.device)
        if self.group.active and self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", self.group.local_rank)
        self.learnable = bool(proposer.learnable)
        if self.device.type == "cuda":  # TF32 and tuned convolutions (patch shapes never change)
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True

        _seed_everything(config.seed)
        self.fuser = fuser
        self.fuser_net = fuser.build_network().to(self.device).train()
        self.proposer_net = proposer.build_network().to(self.device).train()
        if config.symmetric_proposer and proposer.learnable:
            from .symmetric import OrderEquivariant

            self.proposer_net = OrderEquivariant(self.proposer_net).to(self.device).train()
        self.recon_net = reconstructor.build_network().to(self.device).train()
        p_params = list(self.proposer_net.parameters())
        if self.learnable and not p_params:
            raise ParameterError(f"loss proposer {self.names['loss_proposer']!r} is learnable but has no "
                                 f"parameters; set learnable = False")
        if not self.learnable:
            for p in p_params:
                p.requires_grad_(False)
        self.opt_fuser = torch.optim.Adam(self.fuser_net.parameters(), lr=config.lr)
        self.opt_recon = torch.optim.Adam(self.recon_net.parameters(), lr=config.lr)
        self.schedule: EpochSchedule | None = None
        if config.recipe == "authors":
            items = len(getattr(sampler, "images", ())) or 1
            self.schedule = EpochSchedule(
                epochs=config.epochs, meta_batches=config.meta_batches if self.learnable else 0,
                fusion_batches=config.fusion_batches or -(-items // config.batch_size),
                decay_every=config.decay_every, accumulate=config.accumulate)
            config.steps = self.schedule.total_steps
        # the authors recipe draws meta batches from a stream of their own, so that a learned and a fixed
        # run with the same seed train F on the very same fusion batches
        self.meta_sampler = None
        if self.schedule is not None and self.learnable and hasattr(sampler, "rng"):
            self.meta_sampler = copy.copy(sampler)
            self.meta_sampler.rng = np.random.default_rng([config.seed, self.group.rank, 7919])
        # the authors recipe moves P by normalised SGD (no optimiser state); gradients summed per window
        self.opt_proposer = (torch.optim.Adam(p_params, lr=config.lr_proposer)
                             if self.learnable and self.schedule is None else None)
        self._p_window: list[torch.Tensor] | None = None
        self.step = 0
        self.elapsed_before = 0.0
        self.warmup_error: float | None = None
        self._fixed_net: torch.nn.Module | None = None   # the hand-made weights, built when first needed
        self._recent: list[dict[str, float]] = []

    # -- phases ---------------------------------------------------------------
    def phase_of(self, step: int) -> str:
        """``"meta"`` or ``"fusion"`` for 0-based ``step``."""
        c = self.config
        if self.schedule is not None:
            return self.schedule.phase_of(step)
        if not self.learnable or c.meta_steps == 0:
            return "fusion"
        return "meta" if step % (c.meta_steps + c.fusion_steps) < c.meta_steps else "fusion"

    def _batch(self, meta: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        sampler = self.meta_sampler if meta and self.meta_sampler is not None else self.sampler
        patches = sampler.sample(self.config.batch_size)
        inputs, targets = swap_augment(patches, self.config.swap)
        return (torch.from_numpy(np.ascontiguousarray(inputs)).to(self.device),
                torch.from_numpy(np.ascontiguousarray(targets)).to(self.device))

    def _check_finite(self, value: torch.Tensor, what: str) -> None:
        if not torch.isfinite(value):
            raise FloatingPointError(f"{what} became {value.item()} at step {self.step + 1}; "
                                     f"lower --lr or --lambda-grad")

    def loss_weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Intensity and gradient weights of ``L_fuse`` for inputs ``x`` (``N x S x H x W`` each).

        The proposer's, except that with ``learn_weights = "intensity"`` the
        gradient weights are the hand-made fixed loss's (no gradient flows to
        the proposer through them).
        """
        w_int, w_grad = self.proposer_net(x)
        if self.learnable and self.config.learn_weights == "intensity":
            with torch.no_grad():
                w_grad = self._hand_made_weights()(x)[1]
        return w_int, w_grad

    def _hand_made_weights(self) -> torch.nn.Module:
        """The task's ``fixed`` loss-weight network (warm-up targets, intensity-only gradient weights)."""
        if self._fixed_net is None:
            from .fixed import FixedLossProposer

            self._fixed_net = FixedLossProposer(task=self.config.task).build_network().to(self.device)
        return self._fixed_net

    def fusion_step(self, lr: float, lam: float) -> dict[str, float]:
        """One fusion step: F on ``L_fuse`` (P frozen), R on ``L_rec``."""
        x, t = self._batch()
        with torch.no_grad():
            w_int, w_grad = self.loss_weights(x)
        fused = self.fuser_net(x)
        loss_f, parts = fusion_loss(x, fused, w_int, w_grad, lam)
        self._check_finite(loss_f, "the fusion loss")
        self.opt_fuser.zero_grad(set_to_none=True)
        loss_f.backward()
        self.group.average_gradients(self.fuser_net.parameters())
        _set_lr(self.opt_fuser, lr)
        self.opt_fuser.step()
        rec = self.recon_net(fused.detach())
        loss_r = reconstruction_loss(t, rec, self.config.rec_reduction)
        self._check_finite(loss_r, "the reconstruction loss")
        self.opt_recon.zero_grad(set_to_none=True)
        loss_r.backward()
        self.group.average_gradients(self.recon_net.parameters())
        _set_lr(self.opt_recon, lr)
        self.opt_recon.step()
        return {"fuse": loss_f.item(), "fuse_int": parts["int"].item(), "fuse_grad": parts["grad"].item(),
                "rec": loss_r.item()}

    def meta_gradients(self, lr: float, lam: float, *, direct: bool = False,
                       outer_weight: float = 1.0) -> tuple[list[torch.Tensor | None], list[torch.Tensor | None],
                                                           dict[str, float], dict[str, torch.Tensor]]:
        """P's meta-gradient (and direct gradient) on one inner and one outer batch; nothing moves.

        Inner batch: P's (non-detached) weights give ``L_fuse`` of F; a
        virtual SGD step ``theta' = theta - lr * dL_fuse/dtheta`` keeps the
        graph back to P (:func:`torch.func.functional_call`, no copy of F);
        R takes a virtual step on ``L_rec`` of the detached fused image.
        Outer batch: F with ``theta'`` fuses, R with its virtual weights
        rebuilds, and ``outer_weight * L_rec`` is differentiated with respect
        to P.

        Parameters
        ----------
        lr : float
            Inner (virtual) step size of F and R.
        lam : float
            Gradient-term weight of ``L_fuse``.
        direct : bool
            Also return ``dL_fuse/dP`` of the inner batch (else ``None`` s).
        outer_weight : float
            Factor of the outer loss (``1 / accumulate`` in the authors recipe).

        Returns
        -------
        meta, direct : list of Tensor or None
            Per parameter of P (``requires_grad`` ones, in order); detached.
        losses : dict of str to float
            ``fuse``, ``fuse_int``, ``fuse_grad``, ``rec``, ``meta_rec``.
        inner : dict of str to Tensor
            The inner batch ``x`` (``N x S x H x W``) and P's weights on it,
            ``w_int`` and ``w_grad`` (detached), for diagnostics.
        """
        f_params = {k: v for k, v in self.fuser_net.named_parameters() if v.requires_grad}
        r_params = {k: v for k, v in self.recon_net.named_parameters() if v.requires_grad}
        p_params = [p for p in self.proposer_net.parameters() if p.requires_grad]
        x, t = self._batch(meta=True)
        w_int, w_grad = self.loss_weights(x)
        fused = functional_call(self.fuser_net, f_params, (x,))
        loss_f, parts = fusion_loss(x, fused, w_int, w_grad, lam)
        self._check_finite(loss_f, "the fusion loss")
        wrt = list(f_params.values()) + (p_params if direct else [])
        all_grads = torch.autograd.grad(loss_f, wrt, create_graph=True, allow_unused=True)
        grads = all_grads[:len(f_params)]
        direct_grads = ([None if g is None else g.detach() for g in all_grads[len(f_params):]]
                        if direct else [None] * len(p_params))
        f_virtual = {k: (v - lr * g if g is not None else v) for (k, v), g in zip(f_params.items(), grads)}
        rec = functional_call(self.recon_net, r_params, (fused.detach(),))
        loss_r = reconstruction_loss(t, rec, self.config.rec_reduction)
        r_grads = torch.autograd.grad(loss_r, list(r_params.values()), allow_unused=True)
        r_virtual = {k: (v.detach() - lr * g if g is not None else v.detach())
                     for (k, v), g in zip(r_params.items(), r_grads)}
        x2, t2 = self._batch(meta=True)
        fused2 = functional_call(self.fuser_net, f_virtual, (x2,))
        rec2 = functional_call(self.recon_net, r_virtual, (fused2,))
        meta = reconstruction_loss(t2, rec2, self.config.rec_reduction)
        self._check_finite(meta, "the meta reconstruction loss")
        meta_grads = torch.autograd.grad(meta * outer_weight, p_params, allow_unused=True)
        losses = {"fuse": loss_f.item(), "fuse_int": parts["int"].item(), "fuse_grad": parts["grad"].item(),
                  "rec": loss_r.item(), "meta_rec": meta.item()}
        inner = {"x": x.detach(), "w_int": w_int.detach(), "w_grad": w_grad.detach()}
        return [None if g is None else g.detach() for g in meta_grads], direct_grads, losses, inner

    def meta_step(self, lr: float, lr_p: float, lam: float) -> dict[str, float]:
        """One meta step of the ``fusekit`` recipe: Adam on P's normalised meta-gradient."""
        p_params = [p for p in self.proposer_net.parameters() if p.requires_grad]
        p_grads, _, losses, _ = self.meta_gradients(lr, lam)
        if self.group.active:  # the group's mean meta-gradient (an unused parameter counts as 0)
            p_grads = self.group.average([torch.zeros_like(p) if g is None else g
                                          for p, g in zip(p_params, p_grads)])
        scale = max((g.abs().max() for g in p_grads if g is not None),
                    default=torch.tensor(0.0, device=self.device))
        self.opt_proposer.zero_grad(set_to_none=True)
        if scale > 0:
            for p, g in zip(p_params, p_grads):
                p.grad = None if g is None else (g / scale)
            _set_lr(self.opt_proposer, lr_p)
            self.opt_proposer.step()
        return losses

    def meta_step_authors(self, lr: float, lam: float) -> dict[str, float]:
        """One meta step of the ``authors`` recipe (see :mod:`fusekit.training.recipes`).

        The meta-gradient (outer loss divided by ``accumulate``), plus the
        inner ``dL_fuse/dP`` when ``direct_term`` is on, is summed into the
        window; at the window's end P moves by normalised SGD of size
        ``lr * proposer_step_scale``.
        """
        c = self.config
        p_params = [p for p in self.proposer_net.parameters() if p.requires_grad]
        meta, direct, losses, _ = self.meta_gradients(lr, lam, direct=c.direct_term, outer_weight=1 / c.accumulate)
        losses["meta_gnorm"] = _norm(meta)
        if c.direct_term:
            losses["direct_gnorm"] = _norm(direct)
        if self._p_window is None:
            self._p_window = [torch.zeros_like(p) for p in p_params]
        for acc, g, d in zip(self._p_window, meta, direct):
            if g is not None:
                acc.add_(g)
            if d is not None:
                acc.add_(d)
        if self.schedule.ends_window(self.step):
            window = self.group.average(self._p_window) if self.group.active else self._p_window
            step = (lr if c.proposer_decay else c.lr) * c.proposer_step_scale
            normalised_sgd_step(p_params, window, step)
            self._p_window = None
        return losses

    def warm_up_proposer(self) -> float | None:
        """Fit a learnable P to the task's hand-made ``fixed`` weights (``config.proposer_warmup`` steps).

        The targets are the one-hot weights of
        :class:`~fusekit.training.fixed.FixedLossProposer` softened by
        ``config.warmup_smoothing``; the loss is their mean squared
        difference from P's weights, minimised with Adam at ``warmup_lr``.
        P's optimiser starts afresh afterwards. Meta-learning then starts
        from the classic loss, and what it changes can be measured against
        the same network trained with ``--loss-proposer fixed``.

        Returns
        -------
        float or None
            Mean squared error of the last 10 warm-up steps, or ``None``
            when there is nothing to warm up (fixed proposer, or 0 steps).
        """
        c = self.config
        if not self.learnable or c.proposer_warmup <= 0:
            return None
        target_net = self._hand_made_weights()
        opt = torch.optim.Adam([p for p in self.proposer_net.parameters() if p.requires_grad], lr=c.warmup_lr)
        errors: list[float] = []
        for _ in range(c.proposer_warmup):
            x, _t = self._batch()
            with torch.no_grad():
                t_int, t_grad = target_net(x)
                n = x.shape[1]
                t_int = t_int * (1 - n * c.warmup_smoothing) + c.warmup_smoothing
                t_grad = t_grad * (1 - n * c.warmup_smoothing) + c.warmup_smoothing
            w_int, w_grad = self.proposer_net(x)
            loss = ((w_int - t_int) ** 2).mean() + ((w_grad - t_grad) ** 2).mean()
            self._check_finite(loss, "the proposer warm-up loss")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            self.group.average_gradients(self.proposer_net.parameters())
            opt.step()
            errors.append(loss.item())
        self.opt_proposer = torch.optim.Adam([p for p in self.proposer_net.parameters() if p.requires_grad],
                                             lr=c.lr_proposer)
        self.warmup_error = float(np.mean(errors[-10:]))
        return self.warmup_error

    def init_from(self, path: str | Path) -> list[str]:
        """Start F (and R, P where the file has them) from earlier training; step stays 0.

        Parameters
        ----------
        path : str or Path
            A fusekit training checkpoint (from any loss proposer: F and R
            are taken, P too if the proposers match), or any weights file
            the fuser itself loads (its ``weights`` option: for ReFusion,
            fusekit ``.safetensors`` or the authors' ``.pth``), F only.

        Returns
        -------
        list of str
            What was loaded: ``"fuser"``, ``"reconstructor"``, ``"proposer"``.

        Raises
        ------
        InputError
            The file does not exist.
        WeightsError
            Unreadable file, weights of another method or task, or tensors
            that do not fit the networks.
        """
        path = Path(path)
        if not path.is_file():
            raise InputError(f"--init file {path} does not exist")
        state = _training_checkpoint_or_none(path)
        if state is None:
            self._load_fuser_weights(path)
            return ["fuser"]
        for key, mine in (("method", self.names["method"]), ("task", self.config.task)):
            if state.get(key) != mine:
                raise WeightsError(f"{path}: checkpoint is for {key} {state.get(key)!r}, this run trains "
                                   f"{mine!r}; pass --init weights of the same {key}")
        parts = {"fuser": (self.fuser_net, state["fuser"]), "reconstructor": (self.recon_net, state["reconstructor_net"])}
        if state.get("loss_proposer") == self.names["loss_proposer"]:
            parts["proposer"] = (self.proposer_net, state["proposer"])
        for key, (net, state_dict) in parts.items():
            try:
                net.load_state_dict(state_dict)
            except RuntimeError as exc:
                raise WeightsError(f"{path}: checkpoint does not fit the {key} network of this run "
                                   f"({str(exc).splitlines()[0]})") from exc
        return list(parts)

    def _load_fuser_weights(self, path: Path) -> None:
        """Load a weights file into F the way the fuser loads its ``weights`` option."""
        if path.suffix == ".safetensors":  # fusekit weights say what they are for
            try:
                from safetensors import safe_open

                with safe_open(str(path), framework="pt") as fh:
                    meta = fh.metadata() or {}
            except Exception as exc:
                raise WeightsError(f"{path}: not readable safetensors weights ({type(exc).__name__}); "
                                   f"pass weights written by 'fusekit train'") from exc
            for key, mine in (("method", self.names["method"]), ("task", self.config.task)):
                if meta.get(key) not in (None, mine):
                    raise WeightsError(f"{path}: weights are for {key} {meta[key]!r}, this run trains "
                                       f"{mine!r}; pass --init weights of the same {key}")
        if not hasattr(self.fuser, "weights"):
            raise WeightsError(f"{path}: method {self.names['method']!r} has no 'weights' option to load it "
                               f"with; pass a checkpoint written by 'fusekit train'")
        loader = copy.copy(self.fuser)
        loader.weights = path
        cpu_net = self.fuser.build_network()
        loader.load_weights(cpu_net)  # raises WeightsError naming the file
        self.fuser_net.load_state_dict(cpu_net.state_dict())

    # -- the loop ---------------------------------------------------------------
    def run(self, on_step: Callable[[int, dict[str, float]], None] | None = None,
            clock_start: float | None = None) -> TrainResult:
        """Train until ``config.steps`` or the time budget; returns a :class:`TrainResult`.

        Parameters
        ----------
        on_step : callable, optional
            Called as ``on_step(step, losses)`` after every step.
        clock_start : float, optional
            :func:`time.monotonic` value from which ``max_minutes`` counts
            (e.g. when the command started, so loading data counts too);
            default: now.

        Raises
        ------
        TrainingInterrupted
            On Ctrl-C, after saving a checkpoint.
        """
        c = self.config
        start = time.monotonic()
        budget_start = start if clock_start is None else min(clock_start, start)
        log_file, writer = self._open_log()
        bar = _progress_bar(total=None if c.steps >= UNTIL_TIME_UP else c.steps, initial=self.step,
                            show=self.progress,
                            desc=f"train {self.names['method']}/{c.task}")
        stopped = "done"
        self.group.broadcast_parameters([self.fuser_net, self.proposer_net, self.recon_net])
        stop = _StopRequest()
        snapshot = self._sampler_states()
        try:
            stop.install()
            if self.step == 0:
                self.warm_up_proposer()
            while self.step < c.steps:
                if stop.requested:  # Ctrl-C / SIGTERM arrived during the last step: stop at this boundary
                    raise KeyboardInterrupt
                # every process must take the same decision: the group agrees on the slowest clock
                spent = (self.group.max(time.monotonic() - budget_start, self.device)
                         if c.max_minutes is not None else 0.0)
                if c.max_minutes is not None and spent >= c.max_minutes * 60:
                    stopped = "time"
                    break
                phase = self.phase_of(self.step)
                if self.schedule is not None:
                    factor = self.schedule.lr_factor(self.step)
                    lr, lam = c.lr * factor, c.lambda_grad * self.schedule.lambda_factor(self.step)
                else:
                    frac = c.progress(self.step, spent)
                    factor = c.lr_factor(self.step, frac)
                    lr, lam = c.lr * factor, c.lambda_at(self.step, frac)
                if phase == "meta" and self.schedule is not None:
                    losses = self.meta_step_authors(lr, lam)
                elif phase == "meta":
                    losses = self.meta_step(lr, c.lr_proposer * factor, lam)
                else:
                    losses = self.fusion_step(lr, lam)
                self.step += 1
                snapshot = self._sampler_states()  # the samplers as a step boundary leaves them
                elapsed = self.elapsed_before + time.monotonic() - start
                self._recent = (self._recent + [losses])[-50:]
                if writer is not None:
                    writer.writerow({"step": self.step, "phase": phase, "lr": f"{lr:.3e}",
                                     "lambda_grad": f"{lam:.4f}", "elapsed_s": f"{elapsed:.2f}",
                                     **{k: f"{v:.6g}" for k, v in losses.items()}})
                    if self.step % 20 == 0:
                        log_file.flush()
                bar.update(1)
                bar.set_postfix({k: f"{v:.4f}" for k, v in losses.items() if k in ("fuse", "rec", "meta_rec")},
                                refresh=False)
                if on_step is not None:
                    on_step(self.step, losses)
                if c.checkpoint_every and self.step % c.checkpoint_every == 0 and self.step < c.steps:
                    self.elapsed_before += time.monotonic() - start
                    start = time.monotonic()
                    self.save_checkpoint()
        except KeyboardInterrupt:
            self.elapsed_before += time.monotonic() - start
            bar.close()
            if log_file is not None:
                log_file.close()
            # a second Ctrl-C may have cut a step short after it drew its batches: put the samplers back
            # where the step began, so that a resumed run draws exactly what an uninterrupted one would
            self._set_sampler_states(snapshot)
            saved = self.save_checkpoint() if self.checkpoint_path else None
            raise TrainingInterrupted(self.step, saved) from None
        finally:
            stop.uninstall()
            bar.close()
            if log_file is not None and not log_file.closed:
                log_file.close()
        self.elapsed_before += time.monotonic() - start
        if self.checkpoint_path:
            self.save_checkpoint()
        return TrainResult(step=self.step, elapsed_s=self.elapsed_before, stopped=stopped,
                           losses=self.recent_losses())

    def _sampler_states(self) -> tuple[Any, Any]:
        return (copy.deepcopy(self.sampler.state()) if hasattr(self.sampler, "state") else None,
                copy.deepcopy(self.meta_sampler.state()) if self.meta_sampler is not None else None)

    def _set_sampler_states(self, states: tuple[Any, Any]) -> None:
        main, meta = states
        if main is not None:
            self.sampler.set_state(main)
        if meta is not None and self.meta_sampler is not None:
            self.meta_sampler.set_state(meta)

    def recent_losses(self) -> dict[str, float]:
        """Mean of each loss over the last (up to 50) steps that reported it."""
        out: dict[str, float] = {}
        for key in ("fuse", "fuse_int", "fuse_grad", "rec", "meta_rec"):
            values = [r[key] for r in self._recent if key in r]
            if values:
                out[key] = float(np.mean(values))
        return out

    def _open_log(self) -> tuple[Any, Any]:
        if self.log_path is None:
            return None, None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        kept: list[dict[str, str]] = []
        if self.step > 0 and self.log_path.exists():  # resumed: drop rows after the checkpoint
            with open(self.log_path, newline="") as fh:
                kept = [row for row in csv.DictReader(fh) if row.get("step", "").isdigit()
                        and int(row["step"]) <= self.step]
        fh = open(self.log_path, "w", newline="")
        writer = csv.DictWriter(fh, fieldnames=_LOG_COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(kept)
        return fh, writer

    # -- checkpoints ------------------------------------------------------------
    def _identity(self) -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
                "method": self.names["method"], "loss_proposer": self.names["loss_proposer"],
                "reconstructor": self.names["reconstructor"], "task": self.config.task}

    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Save everything needed to resume (atomic). Returns the path."""
        path = Path(path) if path else self.checkpoint_path
        if path is None:
            raise ParameterError("no checkpoint path set")
        if not self.group.is_main:  # identical networks everywhere: rank 0 writes for the group
            return path
        state = {
            **self._identity(),
            "fusekit_version": __version__,
            "step": self.step,
            "elapsed_s": float(self.elapsed_before),
            "config": json.dumps(asdict(self.config)),
            "sampler_state": json.dumps(self.sampler.state()),
            "meta_sampler_state": json.dumps(self.meta_sampler.state()) if self.meta_sampler is not None else "",
            "recent_losses": json.dumps(self._recent),
            "fuser": self.fuser_net.state_dict(),
            "proposer": self.proposer_net.state_dict(),
            "reconstructor_net": self.recon_net.state_dict(),
            "opt_fuser": self.opt_fuser.state_dict(),
            "opt_recon": self.opt_recon.state_dict(),
            "opt_proposer": self.opt_proposer.state_dict() if self.opt_proposer is not None else {},
            "proposer_window": [g.detach().cpu() for g in self._p_window] if self._p_window is not None else [],
        }
        with atomic_file(path, what="checkpoint") as tmp:
            torch.save(state, tmp)
        return path

    def _check_objective(self, path: str | Path, saved: dict[str, Any]) -> None:
        """Refuse to resume under another loss: ``learn_weights`` and ``rec_reduction``
        must match the checkpoint's (a checkpoint older than a setting had its default)."""
        defaults = {f.name: f.default for f in fields(TrainConfig)}
        for key in _OBJECTIVE_SETTINGS:
            theirs, ours = saved.get(key, defaults[key]), getattr(self.config, key)
            if theirs != ours:
                option = "--" + key.replace("_", "-")
                raise WeightsError(f"{path}: checkpoint was trained with {option} {theirs}, this run uses "
                                   f"{option} {ours}; resume with {option} {theirs} or start afresh")

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore a checkpoint saved by :meth:`save_checkpoint`.

        Raises
        ------
        WeightsError
            The file is not a fusekit checkpoint, comes from another layout
            version, method, loss proposer, reconstructor or task, was
            trained with another ``learn_weights`` or ``rec_reduction``, or
            does not fit the networks.
        """
        state = read_checkpoint(path)
        mine = self._identity()
        for key in ("format_version", "method", "loss_proposer", "reconstructor", "task"):
            if state.get(key) != mine[key]:
                raise WeightsError(f"{path}: checkpoint is for {key.replace('_', ' ')} {state.get(key)!r}, "
                                   f"this run uses {mine[key]!r}; resume with matching settings or start afresh")
        self._check_objective(path, json.loads(state.get("config", "{}")))
        try:
            self.fuser_net.load_state_dict(state["fuser"])
            self.proposer_net.load_state_dict(state["proposer"])
            self.recon_net.load_state_dict(state["reconstructor_net"])
            self.opt_fuser.load_state_dict(state["opt_fuser"])
            self.opt_recon.load_state_dict(state["opt_recon"])
            if self.opt_proposer is not None:
                self.opt_proposer.load_state_dict(state["opt_proposer"])
            window = state.get("proposer_window") or []
            self._p_window = [g.to(self.device) for g in window] if window else None
            if self.group.is_main:
                self.sampler.set_state(json.loads(state["sampler_state"]))
                if self.meta_sampler is not None and state.get("meta_sampler_state"):
                    self.meta_sampler.set_state(json.loads(state["meta_sampler_state"]))
            else:  # only rank 0's sampler is saved: the others continue on fresh streams
                fresh = np.random.SeedSequence([self.config.seed, self.group.rank, int(state["step"])])
                self.sampler.set_state(np.random.default_rng(fresh).bit_generator.state)
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise WeightsError(f"{path}: checkpoint does not fit the networks of this run "
                               f"({type(exc).__name__}: {str(exc).splitlines()[0]}); start afresh") from exc
        self.step = int(state["step"])
        self.elapsed_before = float(state["elapsed_s"])
        self._recent = json.loads(state.get("recent_losses", "[]"))
        if self.step > self.config.steps:
            raise ParameterError(f"{path}: checkpoint is at step {self.step}, beyond --steps "
                                 f"{self.config.steps}; raise --steps to continue training")

    def weights_metadata(self, result: TrainResult | None = None) -> dict[str, str]:
        """Metadata stored with the exported fuser weights."""
        c = self.config
        meta = {"format": "fusekit-weights", "fusekit_version": __version__, "method": self.names["method"],
                "task": c.task, "loss_proposer": self.names["loss_proposer"],
                "reconstructor": self.names["reconstructor"], "steps": str(self.step), "seed": str(c.seed),
                "batch_size": str(c.batch_size), "patch_size": str(c.patch_size),
                "device": str(self.device), "machine": platform.node() or "unknown"}
        if result is not None:
            meta["train_seconds"] = f"{result.elapsed_s:.1f}"
            meta["final_losses"] = json.dumps({k: round(v, 6) for k, v in result.losses.items()})
        return meta

    def export(self, path: str | Path, result: TrainResult | None = None) -> Path:
        """Write F's weights as safetensors with :meth:`weights_metadata`."""
        return save_weights(self.fuser_net.state_dict(), path, self.weights_metadata(result))


def _training_checkpoint_or_none(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or ``None`` if the file is not a fusekit training checkpoint."""
    if path.suffix == ".safetensors":
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None  # not a torch file at all: let the fuser's loader name the problem
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        return None
    return _checked_version(state, path)


def _checked_version(state: dict[str, Any], path: Path) -> dict[str, Any]:
    """``state`` if its layout version is the one this fusekit reads, else WeightsError."""
    if state.get("format_version") != CHECKPOINT_VERSION:
        raise WeightsError(f"{path}: checkpoint layout version {state.get('format_version')!r}, this fusekit "
                           f"reads version {CHECKPOINT_VERSION}; retrain or use the fusekit that wrote it")
    return state


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``) and check its format.

    Raises
    ------
    InputError
        The file does not exist.
    WeightsError
        It is not a fusekit training checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{path}: not a readable training checkpoint ({type(exc).__name__}); "
                           f"pass a file written by 'fusekit train --checkpoint'") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(f"{path}: not a fusekit training checkpoint; pass a file written by "
                           f"'fusekit train --checkpoint'")
    return _checked_version(state, path)


class _StopRequest:
    """Turn the first Ctrl-C (SIGINT) or SIGTERM into a request to stop at the next step boundary.

    The training loop checks :attr:`requested` between steps, so the
    checkpoint it then saves is exact and a resumed run continues as if it
    had never stopped. A second signal interrupts at once (the loop then
    restores its samplers to the start of the cut step). Outside the main
    thread signals cannot be caught, and Ctrl-C interrupts at once.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def install(self) -> None:
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except (ValueError, OSError):  # pragma: no cover - platforms without the signal
                pass

    def uninstall(self) -> None:
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, initial: int, show: bool | None, desc: str) -> Any:
    """A tqdm bar (``show=None``: only on a terminal), or a silent stand-in."""
    if show is False:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency; keep training without it
        return _NoBar()
    return tqdm(total=total, initial=initial, disable=None if show is None else False, desc=desc,
                unit="step", dynamic_ncols=True)


def _norm(grads: list[torch.Tensor | None]) -> float:
    """Euclidean norm of a list of gradients taken as one vector (``None`` counts as 0)."""
    return math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads if g is not None))


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def config_fields() -> list[str]:
    """Names of the :class:`TrainConfig` fields (for command-line wiring)."""
    return [f.name for f in fields(TrainConfig)]
