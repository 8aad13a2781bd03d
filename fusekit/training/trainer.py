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
(:mod:`~fusekit.training.schedule`). This module holds the :class:`Trainer`,
which owns the networks, and its loop; the settings, checkpoints and the
loss log live in :mod:`~fusekit.training.config`,
:mod:`~fusekit.training.checkpoints` and :mod:`~fusekit.training.bookkeeping`,
and their public names are re-exported here.

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

import copy
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..devices import resolve_device as _resolve_device
from ..errors import ParameterError
from ..interfaces import LossProposer, Reconstructor, TorchFuser
from . import schedule
from .bookkeeping import StopRequest, TrainingInterrupted, TrainResult, log_columns, open_log, progress_bar
from .checkpoints import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, Checkpoints, read_checkpoint, save_weights
from .config import LEARN_WEIGHTS, UNTIL_TIME_UP, TrainConfig
from .data import PatchSampler, swap_augment
from .distributed import Group
from .fusion import FusionStep
from .losses import LOSS_TERMS
from .meta import MetaSteps
from .recipes import EpochSchedule

__all__ = ["TrainConfig", "TrainResult", "Trainer", "TrainingInterrupted", "UNTIL_TIME_UP", "save_weights",
           "read_checkpoint", "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "LEARN_WEIGHTS"]


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))


class Trainer(MetaSteps, FusionStep, Checkpoints):
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

    Examples
    --------
    >>> trainer = Trainer(fuser, proposer, reconstructor, sampler,     # doctest: +SKIP
    ...                   TrainConfig(task="ivif", steps=100))
    >>> result = trainer.run()                                       # doctest: +SKIP
    >>> trainer.fuser_net.state_dict()                               # doctest: +SKIP

    ``schedule`` is the ``"authors"`` recipe's
    :class:`~fusekit.training.recipes.EpochSchedule` (``None`` for ``"fusekit"``).
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
        self.opt_fuser = torch.optim.Adam(self.fuser_net.parameters(), lr=config.lr)
        self.opt_recon = torch.optim.Adam(self.recon_net.parameters(), lr=config.lr)
        self.schedule: EpochSchedule | None = schedule.epoch_schedule(config, self.learnable,
                                                                      len(getattr(sampler, "images", ())) or 1)
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
        return schedule.phase_of(self.config, self.schedule, self.learnable, step)

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
                lr, lr_p, lam = schedule.rates(c, self.schedule, self.step, spent)
                if phase == "meta" and self.schedule is not None:
                    losses = self.meta_step_authors(lr, lam)
                elif phase == "meta":
                    losses = self.meta_step(lr, lr_p, lam)
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
            # a second Ctrl-C may have cut a step short after it drew its batches: put the samplers back
            # where the step began, so that a resumed run draws exactly what an uninterrupted one would
            self._set_sampler_states(snapshot)
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
        for key in ("fuse", *(t.log for t in LOSS_TERMS.values()), "rec", "meta_rec"):
            values = [r[key] for r in self._recent if key in r]
            if values:
                out[key] = float(np.mean(values))
        return out
