"""The fusion step: F learns from ``L_fuse`` with P frozen, R from ``L_rec``.

Mixed into :class:`~fusekit.training.trainer.Trainer` (its networks,
optimisers, ``group`` and batches).
"""

from __future__ import annotations

import torch

from .losses import LOSS_TERMS, fusion_loss, reconstruction_loss

__all__ = ["FusionStep", "set_lr", "term_losses"]


class FusionStep:
    """One update of F and R (a mixin of :class:`~fusekit.training.trainer.Trainer`)."""

    def fusion_step(self, lr: float, lam: float) -> dict[str, float]:
        """One fusion step: F on ``L_fuse`` (P frozen), R on ``L_rec``."""
        x, t = self._batch()
        with torch.no_grad():
            weights = self.loss_weights(x)
        fused = self.fuser_net(x)
        loss_f, parts = fusion_loss(x, fused, weights, lam)
        self._check_finite(loss_f, "the fusion loss")
        self.opt_fuser.zero_grad(set_to_none=True)
        loss_f.backward()
        self.group.average_gradients(self.fuser_net.parameters())
        set_lr(self.opt_fuser, lr)
        self.opt_fuser.step()
        rec = self.recon_net(fused.detach())
        loss_r = reconstruction_loss(t, rec, self.config.rec_reduction)
        self._check_finite(loss_r, "the reconstruction loss")
        self.opt_recon.zero_grad(set_to_none=True)
        loss_r.backward()
        self.group.average_gradients(self.recon_net.parameters())
        set_lr(self.opt_recon, lr)
        self.opt_recon.step()
        return {"fuse": loss_f.item(), **term_losses(parts), "rec": loss_r.item()}


def term_losses(parts: dict[str, torch.Tensor]) -> dict[str, float]:
    """Each term of ``L_fuse`` under its log name (``fuse_int``, ``fuse_grad``, ...)."""
    return {LOSS_TERMS[name].log: value.item() for name, value in parts.items()}


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
