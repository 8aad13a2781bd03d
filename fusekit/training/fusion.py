"""The fusion step: F learns from ``L_fuse`` with P's weights frozen, R from ``L_rec`` (:class:`FusionStep`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch

from .losses import LOSS_TERMS, fusion_loss, reconstruction_loss

if TYPE_CHECKING:  # pragma: no cover
    from .config import TrainConfig
    from .data import Batches
    from .distributed import Group

__all__ = ["FusionStep", "check_finite", "set_lr", "term_losses"]


class FusionStep:
    """One update of F on ``L_fuse`` (P frozen) and of R on ``L_rec`` of the detached fused image.

    Parameters
    ----------
    fuser_net, recon_net : torch.nn.Module
        F (``N x S x H x W`` sources -> ``N x 1 x H x W``) and R (back to ``N x S x H x W``).
    loss_weights : callable
        ``N x S x H x W`` sources -> term name -> ``N x S x H x W`` weights
        of ``L_fuse`` (:meth:`~fusekit.training.meta.MetaStep.loss_weights`).
    batches, config, group : Batches, TrainConfig, Group
        Draws inputs and targets; ``lr`` (the optimisers' first rate) and
        ``rec_reduction`` and ``rec_error``; averages gradients over a data-parallel run.

    Attributes
    ----------
    opt_fuser, opt_recon : torch.optim.Adam
        The optimisers of F and R (saved in checkpoints).
    """

    def __init__(self, fuser_net: torch.nn.Module, recon_net: torch.nn.Module,
                 loss_weights: Callable[[torch.Tensor], dict[str, torch.Tensor]], batches: Batches,
                 config: TrainConfig, group: Group) -> None:
        self.fuser_net, self.recon_net, self.loss_weights = fuser_net, recon_net, loss_weights
        self.batches, self.group = batches, group
        self.rec_reduction, self.rec_error = config.rec_reduction, config.rec_error
        self.opt_fuser = torch.optim.Adam(fuser_net.parameters(), lr=config.lr)
        self.opt_recon = torch.optim.Adam(recon_net.parameters(), lr=config.lr)

    def __call__(self, step: int, lr: float, lam: float) -> dict[str, float]:
        """Take the fusion step ``step`` (0-based) at learning rate ``lr`` and gradient-term weight ``lam``.

        Returns
        -------
        dict of str to float
            ``fuse``, each term's log name (``fuse_int``, ``fuse_grad``, ...), ``rec``.
        """
        x, t = self.batches.draw()
        with torch.no_grad():
            weights = self.loss_weights(x)
        fused = self.fuser_net(x)
        loss_f, parts = fusion_loss(x, fused, weights, lam)
        check_finite(loss_f, "the fusion loss", step)
        self.opt_fuser.zero_grad(set_to_none=True)
        loss_f.backward()
        self.group.average_gradients(self.fuser_net.parameters())
        set_lr(self.opt_fuser, lr)
        self.opt_fuser.step()
        rec = self.recon_net(fused.detach())
        loss_r = reconstruction_loss(t, rec, self.rec_reduction, self.rec_error)
        check_finite(loss_r, "the reconstruction loss", step)
        self.opt_recon.zero_grad(set_to_none=True)
        loss_r.backward()
        self.group.average_gradients(self.recon_net.parameters())
        set_lr(self.opt_recon, lr)
        self.opt_recon.step()
        return {"fuse": loss_f.item(), **term_losses(parts), "rec": loss_r.item()}


def check_finite(value: torch.Tensor, what: str, step: int) -> None:
    """Stop with a FloatingPointError naming ``what`` and the 1-based step when ``value`` is not finite."""
    if not torch.isfinite(value):
        raise FloatingPointError(f"{what} became {value.item()} at step {step + 1}; lower --lr or --lambda-grad")


def term_losses(parts: dict[str, torch.Tensor]) -> dict[str, float]:
    """Each term of ``L_fuse`` under its log name (``fuse_int``, ``fuse_grad``, ...)."""
    return {LOSS_TERMS[name].log: value.item() for name, value in parts.items()}


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
