"""The alternating meta-learning schedule of ReFusion, generic over its three parts.

Three networks train in turn (H. Bai et al., "ReFusion: Learning Image
Fusion from Reconstruction with Learnable Loss via Meta-Learning", IJCV 2024,
arXiv:2312.07943):

* the fusion network F (any :class:`~fusekit.interfaces.TorchFuser`),
* the loss proposal network P (any :class:`~fusekit.interfaces.LossProposer`),
  whose pixel-wise weights define ``L_fuse``,
* the reconstruction network R (any :class:`~fusekit.interfaces.Reconstructor`),
  which rebuilds the sources from the fused image (``L_rec``).

Training alternates meta steps, which update P so that R can rebuild the
sources from what F fuses (:mod:`~fusekit.training.meta`), and fusion steps,
which train F on ``L_fuse`` with P frozen and R on ``L_rec``
(:mod:`~fusekit.training.fusion`), in the rhythm of the recipe
(:mod:`~fusekit.training.schedule`). This module holds the :class:`Trainer`:
it builds the networks and the parts that work on them, each with explicit
inputs (:class:`~fusekit.training.data.Batches`,
:class:`~fusekit.training.meta.MetaStep`,
:class:`~fusekit.training.fusion.FusionStep`, the functions of
:mod:`~fusekit.training.checkpoints`), and runs the loop, the log and the
progress bar (:mod:`~fusekit.training.bookkeeping`). The settings live in
:mod:`~fusekit.training.config`; the public names of these modules are
re-exported here.

A proposer with ``learnable = False`` (the hand-made ``fixed`` loss) skips
meta steps. Every random draw comes from the seed, so two runs with the same
seed, data and device give the same weights, and a run resumed from a
checkpoint continues exactly as if it had not stopped.

With a :class:`~fusekit.training.distributed.Group` of several processes
(``torchrun``), every gradient is averaged over the group before each
optimiser step, including P's meta-gradient, so all processes stay
identical; each draws its own patches.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..devices import resolve_device as _resolve_device
from ..errors import ParameterError
from ..interfaces import LossProposer, Reconstructor, TorchFuser
from . import checkpoints, schedule
from .bookkeeping import StopRequest, TrainingInterrupted, TrainResult, log_columns, open_log, progress_bar
from .checkpoints import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, PARTS, read_checkpoint, save_weights
from .config import LEARN_WEIGHTS, UNTIL_TIME_UP, TrainConfig
from .data import Batches, PatchSampler
from .distributed import Group
from .fusion import FusionStep
from .losses import LOSS_TERMS
from .meta import MetaStep
from .recipes import EpochSchedule

__all__ = ["TrainConfig", "TrainResult", "Trainer", "TrainingInterrupted", "UNTIL_TIME_UP", "save_weights",
           "read_checkpoint", "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "LEARN_WEIGHTS"]


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))


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
        Source of ``S x P x P`` patch stacks in canonical order (``S`` sources).
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

    Attributes
    ----------
    fuser_net, proposer_net, recon_net : torch.nn.Module
        F, P and R.
    schedule : EpochSchedule or None
        The ``"authors"`` recipe's epochs (``None`` for ``"fusekit"``).
    batches : Batches
        The training batches.
    meta : MetaStep
        P's loss weights, meta steps and warm-up.
    fusion : FusionStep
        The fusion step (and F's and R's optimisers).
    step : int
        Steps done (0-based index of the next one).

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
        self.names = {"method": fuser.name, "loss_proposer": proposer.name, "reconstructor": reconstructor.name,
                      **(names or {})}
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.log_path = Path(log_path) if log_path and self.group.is_main else None
        self.progress = progress if self.group.is_main else False
        self.device = _resolve_device(config.device)
        if self.group.active and self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", self.group.local_rank)
        self.learnable = bool(proposer.learnable)
        if not self.learnable and self.group.is_main and (unused := config.proposer_only_changes()):
            import warnings

            from ..io import FusekitWarning

            flags = ", ".join("--" + name.replace("_", "-") for name in unused)
            warnings.warn(f"the hand-made loss proposer {self.names['loss_proposer']!r} ignores {flags} (they set "
                          f"how a learnable proposer learns): drop them, or train with --loss-proposer refusion",
                          FusekitWarning, stacklevel=2)
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

            self.proposer_net = OrderEquivariant(self.proposer_net, config.symmetric_mean).to(self.device).train()
        if config.proposer_temperature != 1.0 and proposer.learnable:
            from .sharpen import Sharpened

            self.proposer_net = Sharpened(self.proposer_net, config.proposer_temperature).to(self.device).train()
        self.recon_net = reconstructor.build_network().to(self.device).train()
        p_params = list(self.proposer_net.parameters())
        if self.learnable and not p_params:
            raise ParameterError(f"loss proposer {self.names['loss_proposer']!r} is learnable but has no "
                                 f"parameters; set learnable = False")
        if not self.learnable:
            for p in p_params:
                p.requires_grad_(False)
        self.schedule: EpochSchedule | None = schedule.epoch_schedule(config, self.learnable,
                                                                      len(getattr(sampler, "images", ())) or 1)
        # the authors recipe draws meta batches from a stream of their own, so that a learned and a fixed
        # run with the same seed train F on the very same fusion batches
        separate = self.schedule is not None and self.learnable
        self.batches = Batches(sampler, config.batch_size, config.swap, self.device,
                               meta_seed=[config.seed, self.group.rank, 7919] if separate else None)
        self.meta = MetaStep(self.fuser_net, self.proposer_net, self.recon_net, self.batches, config, self.schedule,
                             self.group, self.learnable)
        self.fusion = FusionStep(self.fuser_net, self.recon_net, self.meta.loss_weights, self.batches, config,
                                 self.group)
        self.step = 0
        self.elapsed_before = 0.0
        self.warmup_error: float | None = None
        self._recent: list[dict[str, float]] = []

    # -- the parts at the current step (see MetaStep and FusionStep) ----------------
    def phase_of(self, step: int) -> str:
        """``"meta"`` or ``"fusion"`` for 0-based ``step``."""
        return schedule.phase_of(self.config, self.schedule, self.learnable, step)

    def loss_weights(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """:meth:`MetaStep.loss_weights <fusekit.training.meta.MetaStep.loss_weights>`."""
        return self.meta.loss_weights(x)

    def meta_gradients(self, lr: float, lam: float, **options: Any) -> tuple:
        """:meth:`MetaStep.gradients <fusekit.training.meta.MetaStep.gradients>` at the current step."""
        return self.meta.gradients(self.step, lr, lam, **options)

    def meta_step(self, lr: float, lr_p: float, lam: float) -> dict[str, float]:
        """A ``fusekit`` recipe meta step (:meth:`MetaStep.fusekit <fusekit.training.meta.MetaStep.fusekit>`)."""
        return self.meta.fusekit(self.step, lr, lr_p, lam)

    def meta_step_authors(self, lr: float, lam: float) -> dict[str, float]:
        """An ``authors`` recipe meta step (:meth:`MetaStep.authors <fusekit.training.meta.MetaStep.authors>`)."""
        return self.meta.authors(self.step, lr, lam)

    def fusion_step(self, lr: float, lam: float) -> dict[str, float]:
        """A fusion step (:class:`~fusekit.training.fusion.FusionStep`)."""
        return self.fusion(self.step, lr, lam)

    def warm_up_proposer(self) -> float | None:
        """:meth:`MetaStep.warm_up <fusekit.training.meta.MetaStep.warm_up>`; its error is kept as ``warmup_error``."""
        self.warmup_error = self.meta.warm_up()
        return self.warmup_error

    @property
    def opt_proposer(self) -> torch.optim.Optimizer | None:
        """P's optimiser (:attr:`MetaStep.optimizer <fusekit.training.meta.MetaStep.optimizer>`)."""
        return self.meta.optimizer

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
        log_file, writer = open_log(self.log_path, self.step, log_columns([t.log for t in LOSS_TERMS.values()]))
        bar = progress_bar(total=None if c.steps >= UNTIL_TIME_UP else c.steps, initial=self.step,
                            show=self.progress,
                            desc=f"train {self.names['method']}/{c.task}")
        stopped = "done"
        self.group.broadcast_parameters([self.fuser_net, self.proposer_net, self.recon_net])
        stop = StopRequest()
        snapshot = self.batches.states()
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
                lr, lr_p, lam = schedule.rates(c, self.schedule, self.step, spent)
                if phase == "meta" and self.schedule is not None:
                    losses = self.meta_step_authors(lr, lam)
                elif phase == "meta":
                    losses = self.meta_step(lr, lr_p, lam)
                else:
                    losses = self.fusion_step(lr, lam)
                self.step += 1
                snapshot = self.batches.states()  # the samplers as a step boundary leaves them
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
            # a second Ctrl-C may have cut a step short after it drew its batches: put the samplers back
            # where the step began, so that a resumed run draws exactly what an uninterrupted one would
            self.batches.set_states(snapshot)
            saved = self.save_checkpoint() if self.checkpoint_path else None
            raise TrainingInterrupted(self.step, saved) from None
        finally:
            stop.uninstall()
            bar.close()
            if log_file is not None:
                log_file.close()
        self.elapsed_before += time.monotonic() - start
        if self.checkpoint_path:
            self.save_checkpoint()
        return TrainResult(step=self.step, elapsed_s=self.elapsed_before, stopped=stopped,
                           losses=self.recent_losses())

    def recent_losses(self) -> dict[str, float]:
        """Mean of each loss over the last (up to 50) steps that reported it."""
        out: dict[str, float] = {}
        for key in ("fuse", *(t.log for t in LOSS_TERMS.values()), "rec", "meta_rec", "meta_detail"):
            values = [r[key] for r in self._recent if key in r]
            if values:
                out[key] = float(np.mean(values))
        return out

    # -- run state on disk (fusekit.training.checkpoints) -----------------------------------
    def _parts(self) -> dict[str, Any]:
        return dict(zip(PARTS, (self.fuser_net, self.proposer_net, self.recon_net, self.fusion.opt_fuser,
                                self.fusion.opt_recon, self.meta.optimizer)))

    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Save everything needed to resume (atomic) to ``path`` (default ``checkpoint_path``); returns it."""
        path = Path(path) if path else self.checkpoint_path
        if path is None:
            raise ParameterError("no checkpoint path set")
        if self.group.is_main:  # identical networks everywhere: rank 0 writes for the group
            checkpoints.save_checkpoint(path, self.names, self.config, self.step, self.elapsed_before, self._recent,
                                        self.batches, self._parts(), self.meta.window)
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore a checkpoint of :meth:`save_checkpoint` (:func:`~fusekit.training.checkpoints.load_checkpoint`)."""
        self.step, self.elapsed_before, self._recent, window = checkpoints.load_checkpoint(
            path, self.names, self.config, self._parts(), self.batches, self.group.rank)
        self.meta.window = [g.to(self.device) for g in window] if window else None

    def init_from(self, path: str | Path) -> list[str]:
        """Start F (and R, P where the file has them) from earlier training; ``step`` stays 0.

        See :func:`~fusekit.training.checkpoints.init_from`.
        """
        return checkpoints.init_from(path, self.fuser, self._parts(), self.names, self.config.task)

    def export(self, path: str | Path, result: TrainResult | None = None) -> Path:
        """Write F's weights as safetensors, with :func:`~fusekit.training.checkpoints.weights_metadata`."""
        metadata = checkpoints.weights_metadata(self.names, self.config, self.step, self.device, result)
        return save_weights(self.fuser_net.state_dict(), path, metadata)
