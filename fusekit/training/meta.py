"""The meta step: how the loss proposer P learns, and what it proposes (:class:`MetaStep`)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.func import functional_call

from ..errors import ParameterError
from .fixed import FixedLossProposer
from .detail import focus_target, signed_gradient_loss
from .fusion import check_finite, set_lr, term_losses
from .losses import fusion_loss, gradient_term, reconstruction_loss
from .proposals import proposal_terms
from .recipes import normalised_sgd_step

if TYPE_CHECKING:  # pragma: no cover
    from .config import TrainConfig
    from .data import Batches
    from .distributed import Group
    from .recipes import EpochSchedule

__all__ = ["MetaStep", "norm"]


class MetaStep:
    """P's loss weights, its meta-gradient, its updates in either recipe, and its warm-up.

    Parameters
    ----------
    fuser_net, proposer_net, recon_net : torch.nn.Module
        F (``N x S x H x W`` -> ``N x 1 x H x W``), P (``N x S x H x W`` ->
        a proposal, :mod:`~fusekit.training.proposals`) and R (``N x 1 x H
        x W`` -> ``N x S x H x W``). Only P moves; F and R take virtual steps.
    batches : Batches
        Draws the inner, outer and warm-up batches.
    config : TrainConfig
        Read when used (``learn_weights``, ``rec_reduction``, ``rec_error``, ``direct_term``,
        ``accumulate``, the proposer's rates and warm-up settings, ...).
    schedule : EpochSchedule or None
        The ``"authors"`` recipe's epochs (where its windows end), or ``None``.
    group : Group
        Averages gradients over the processes of a data-parallel run.
    learnable : bool
        ``False`` for a hand-made loss: only :meth:`loss_weights` is of use.

    Attributes
    ----------
    optimizer : torch.optim.Adam or None
        P's optimiser in the ``"fusekit"`` recipe (``None`` in the
        ``"authors"`` recipe, which moves P by normalised SGD, or when P
        does not learn); the warm-up starts a fresh one.
    window : list of Tensor or None
        The ``"authors"`` recipe's gradients of P summed over the current
        window, one per parameter (its shape); ``None`` between windows.
    hand_made : torch.nn.Module
        The task's ``fixed`` loss-weight network (warm-up targets, gradient
        weights with ``learn_weights = "intensity"``).
    """

    def __init__(self, fuser_net: torch.nn.Module, proposer_net: torch.nn.Module, recon_net: torch.nn.Module,
                 batches: Batches, config: TrainConfig, schedule: EpochSchedule | None, group: Group,
                 learnable: bool) -> None:
        self.fuser_net, self.proposer_net, self.recon_net = fuser_net, proposer_net, recon_net
        self.batches, self.config, self.schedule = batches, config, schedule
        self.group, self.learnable = group, learnable
        self.optimizer = (torch.optim.Adam(list(proposer_net.parameters()), lr=config.lr_proposer)
                          if learnable and schedule is None else None)
        self.window: list[torch.Tensor] | None = None
        self.hand_made = FixedLossProposer(task=config.task).build_network()

    def _p_params(self) -> list[torch.Tensor]:
        return [p for p in self.proposer_net.parameters() if p.requires_grad]

    def loss_weights(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The weights of ``L_fuse`` for inputs ``x``: term name -> ``N x S x H x W`` (``N x S x H x W`` ``x``).

        The proposer's (a pair it returns means ``intensity``, ``gradient``),
        except that with ``learn_weights = "intensity"`` the gradient weights
        are the hand-made fixed loss's (no gradient flows to the proposer
        through them).
        """
        weights = proposal_terms(self.proposer_net(x))
        if self.learnable and self.config.learn_weights == "intensity":
            with torch.no_grad():
                weights["gradient"] = proposal_terms(self.hand_made(x))["gradient"]
        return weights

    def gradients(self, step: int, lr: float, lam: float, *, direct: bool = False,
                  outer_weight: float = 1.0) -> tuple[list[torch.Tensor | None], list[torch.Tensor | None],
                                                      dict[str, float], dict[str, torch.Tensor]]:
        """P's meta-gradient (and direct gradient) on one inner and one outer batch; nothing moves.

        Inner batch: P's (non-detached) weights give ``L_fuse`` of F; a
        virtual SGD step ``theta' = theta - lr * dL_fuse/dtheta`` keeps the
        graph back to P (:func:`torch.func.functional_call`, no copy of F);
        R takes a virtual step on ``L_rec`` of the detached fused image.
        Outer batch: F with ``theta'`` fuses, R with its virtual weights
        rebuilds, and ``outer_weight * L_rec`` (plus ``meta_detail`` times
        :meth:`detail_loss` of the outer fused image) is differentiated with
        respect to P.

        Parameters
        ----------
        step : int
            The 0-based step (named when a loss is not finite).
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
            ``fuse``, each term's log name (``fuse_int``, ``fuse_grad``, ...),
            ``rec``, ``meta_rec`` (and ``meta_detail`` when ``config.meta_detail > 0``).
        inner : dict
            ``x``: the inner batch (``N x S x H x W``); ``weights``: P's
            weights on it by term name (detached), for diagnostics.
        """
        f_params = {k: v for k, v in self.fuser_net.named_parameters() if v.requires_grad}
        r_params = {k: v for k, v in self.recon_net.named_parameters() if v.requires_grad}
        p_params = self._p_params()
        x, t = self.batches.draw(meta=True)
        weights = self.loss_weights(x)
        fused = functional_call(self.fuser_net, f_params, (x,))
        loss_f, parts = fusion_loss(x, fused, weights, lam)
        check_finite(loss_f, "the fusion loss", step)
        wrt = list(f_params.values()) + (p_params if direct else [])
        all_grads = torch.autograd.grad(loss_f, wrt, create_graph=True, allow_unused=True)
        grads = all_grads[:len(f_params)]
        direct_grads = ([None if g is None else g.detach() for g in all_grads[len(f_params):]]
                        if direct else [None] * len(p_params))
        f_virtual = {k: (v - lr * g if g is not None else v) for (k, v), g in zip(f_params.items(), grads)}
        rec = functional_call(self.recon_net, r_params, (fused.detach(),))
        loss_r = reconstruction_loss(t, rec, self.config.rec_reduction, self.config.rec_error)
        r_grads = torch.autograd.grad(loss_r, list(r_params.values()), allow_unused=True)
        r_virtual = {k: (v.detach() - lr * g if g is not None else v.detach())
                     for (k, v), g in zip(r_params.items(), r_grads)}
        x2, t2 = self.batches.draw(meta=True)
        fused2 = functional_call(self.fuser_net, f_virtual, (x2,))
        rec2 = functional_call(self.recon_net, r_virtual, (fused2,))
        meta = reconstruction_loss(t2, rec2, self.config.rec_reduction, self.config.rec_error)
        meta_rec = meta.item()
        detail = None
        if self.config.meta_detail > 0:
            detail = self.detail_loss(x2, fused2)
            meta = meta + self.config.meta_detail * detail
        check_finite(meta, "the meta-objective", step)
        meta_grads = torch.autograd.grad(meta * outer_weight, p_params, allow_unused=True)
        losses = {"fuse": loss_f.item(), **term_losses(parts), "rec": loss_r.item(), "meta_rec": meta_rec}
        if detail is not None:
            losses["meta_detail"] = detail.item()
        inner = {"x": x.detach(), "weights": {name: w.detach() for name, w in weights.items()}}
        return [None if g is None else g.detach() for g in meta_grads], direct_grads, losses, inner

    def detail_loss(self, x: torch.Tensor, fused: torch.Tensor) -> torch.Tensor:
        """The meta-objective's detail term (``config.meta_detail``, ``config.meta_detail_target``).

        Parameters
        ----------
        x : Tensor
            Sources, ``N x S x H x W`` in [0, 1].
        fused : Tensor
            F's output on them, ``N x 1 x H x W``; differentiable.

        Returns
        -------
        Tensor
            Scalar. ``config.meta_detail_target == "max"``: mean squared difference between the fused
            image's Sobel magnitude and, at each pixel, that of the source with the larger one
            (:func:`~fusekit.training.losses.gradient_term` with the fixed loss's one-hot gradient
            weights). ``"focus"``: :func:`~fusekit.training.detail.signed_gradient_loss` against
            :func:`~fusekit.training.detail.focus_target`, an image the fused one can equal.
        """
        if self.config.meta_detail_target == "focus":
            return signed_gradient_loss(fused, focus_target(x))
        with torch.no_grad():
            weights = proposal_terms(self.hand_made(x))["gradient"]
        return gradient_term(x, fused, weights)

    def fusekit(self, step: int, lr: float, lr_p: float, lam: float) -> dict[str, float]:
        """Meta step ``step`` of the ``fusekit`` recipe: Adam at ``lr_p`` on P's normalised meta-gradient.

        ``lr`` and ``lam`` are those of :meth:`gradients`; returns its losses.
        """
        p_params = self._p_params()
        p_grads, _, losses, _ = self.gradients(step, lr, lam)
        if self.group.active:  # the group's mean meta-gradient (an unused parameter counts as 0)
            p_grads = self.group.average([torch.zeros_like(p) if g is None else g
                                          for p, g in zip(p_params, p_grads)])
        scale = max((g.abs().max() for g in p_grads if g is not None), default=0.0)
        self.optimizer.zero_grad(set_to_none=True)
        if scale > 0:
            for p, g in zip(p_params, p_grads):
                p.grad = None if g is None else (g / scale)
            set_lr(self.optimizer, lr_p)
            self.optimizer.step()
        return losses

    def authors(self, step: int, lr: float, lam: float) -> dict[str, float]:
        """Meta step ``step`` of the ``authors`` recipe (see :mod:`fusekit.training.recipes`).

        The meta-gradient (outer loss divided by ``accumulate``), plus the
        inner ``dL_fuse/dP`` when ``direct_term`` is on, is summed into
        :attr:`window`; where ``step`` ends the window, P moves by
        normalised SGD of size ``lr * proposer_step_scale``. Returns the
        losses of :meth:`gradients` and ``meta_gnorm`` (``direct_gnorm``).
        """
        c = self.config
        p_params = self._p_params()
        meta, direct, losses, _ = self.gradients(step, lr, lam, direct=c.direct_term, outer_weight=1 / c.accumulate)
        losses["meta_gnorm"] = norm(meta)
        if c.direct_term:
            losses["direct_gnorm"] = norm(direct)
        if self.window is None:
            self.window = [torch.zeros_like(p) for p in p_params]
        for acc, g, d in zip(self.window, meta, direct):
            if g is not None:
                acc.add_(g)
            if d is not None:
                acc.add_(d)
        if self.schedule.ends_window(step):
            window = self.group.average(self.window) if self.group.active else self.window
            normalised_sgd_step(p_params, window, (lr if c.proposer_decay else c.lr) * c.proposer_step_scale)
            self.window = None
        return losses

    def warm_up(self) -> float | None:
        """Fit a learnable P to the task's hand-made ``fixed`` weights (``config.proposer_warmup`` steps).

        The targets are the one-hot weights of
        :class:`~fusekit.training.fixed.FixedLossProposer` softened by
        ``config.warmup_smoothing``; the loss is their mean squared
        difference from P's weights, minimised with Adam at ``warmup_lr``.
        P's :attr:`optimizer` starts afresh afterwards. Meta-learning then starts
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
        opt = torch.optim.Adam(self._p_params(), lr=c.warmup_lr)
        errors: list[float] = []
        for _ in range(c.proposer_warmup):
            x, _t = self.batches.draw()
            with torch.no_grad():
                targets = proposal_terms(self.hand_made(x))
                n = x.shape[1]
                if n * c.warmup_smoothing >= 1:
                    raise ParameterError(f"warm-up smoothing {c.warmup_smoothing} leaves no weight to the hand-made "
                                         f"choice among {n} sources; use less than {1 / n:.3g}")
                targets = {k: t * (1 - n * c.warmup_smoothing) + c.warmup_smoothing for k, t in targets.items()}
            weights = proposal_terms(self.proposer_net(x))
            shared = [name for name in weights if name in targets]
            if not shared:
                raise ParameterError(f"the proposer warm-up fits the hand-made {' and '.join(targets)} weights, "
                                     f"but the proposer proposes only {', '.join(weights)}; use --proposer-warmup 0")
            loss = ((weights[shared[0]] - targets[shared[0]]) ** 2).mean()
            for name in shared[1:]:
                loss = loss + ((weights[name] - targets[name]) ** 2).mean()
            check_finite(loss, "the proposer warm-up loss", 0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            self.group.average_gradients(self.proposer_net.parameters())
            opt.step()
            errors.append(loss.item())
        self.optimizer = torch.optim.Adam(self._p_params(), lr=c.lr_proposer)
        return float(np.mean(errors[-10:]))


def norm(grads: list[torch.Tensor | None]) -> float:
    """Euclidean norm of a list of gradients taken as one vector (``None`` counts as 0)."""
    return math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads if g is not None))
