"""Does the loss proposer learn anything? Statistics of its meta-gradient and of its weight maps.

At a training state (a :class:`~fusekit.training.trainer.Trainer`, usually
restored from a checkpoint), :func:`meta_gradient_report` draws ``K`` meta
batches and measures, without moving any network:

* the **signal-to-noise ratio** of P's meta-gradient,
  ``|mean_k g_k| / mean_k |g_k|``: 1 when every batch pushes P the same
  way, about ``1 / sqrt(K)`` when the batches' gradients are unrelated
  (noise), so values near ``1 / sqrt(K)`` mean P follows noise;
* the same for the **direct term** ``dL_fuse/dP`` (the gradient of the
  inner fusion loss with respect to P, which the authors' code adds to the
  meta-gradient), the ratio of the two terms' sizes and the cosine between
  their means (how much of P's step is meta-learning at all);
* statistics of the **proposed weight maps** (two sources) on the
  canonical-order half of the batches: mean weight of the first source (per
  proposed term, e.g. intensity and gradient),
  mean entropy in bits (0 for one-hot weights, 1 for an even split), and the
  share of pixels where the larger weight goes to the brighter source and to
  the source with the larger Sobel gradient (pixels where the sources differ
  by less than 1/255, or their gradients by less than 1/255, are left out).

Reference: H. Bai et al., "ReFusion", IJCV 2024, arXiv:2312.07943.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from ..errors import InputError
from . import schedule
from .losses import sobel_gradient
from .proposals import Proposal, proposal_terms

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer

__all__ = ["meta_gradient_report", "weight_map_stats"]

_TIE = 1.0 / 255.0
_SHORT = {"intensity": "int", "gradient": "grad"}  # the statistics' names of the two usual terms


def _flat(grads: list[torch.Tensor | None], like: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1).double() for g, p in zip(grads, like)])


def _snr(vectors: list[torch.Tensor]) -> float:
    norms = [float(v.norm()) for v in vectors]
    mean_norm = sum(norms) / len(norms)
    return float(torch.stack(vectors).mean(0).norm()) / mean_norm if mean_norm > 0 else float("nan")


def weight_map_stats(x: torch.Tensor, *weights: Proposal | torch.Tensor) -> dict[str, float]:
    """Summary of two-source weight maps, per proposed term.

    Parameters
    ----------
    x : Tensor
        ``N x 2 x H x W`` sources in [0, 1], canonical order.
    *weights : proposal, or Tensor and Tensor
        One proposal (term name -> ``N x 2 x H x W`` weights summing to 1
        over the sources, see :mod:`~fusekit.training.proposals`), or the two
        maps ``w_int, w_grad``.

    Returns
    -------
    dict of str to float
        Per term, under its short name ``T`` (``int``, ``grad``, or the
        term's own name): ``T_first``, the mean weight of source 0;
        ``T_entropy``, the mean entropy in bits; ``T_to_brighter`` and
        ``T_to_sharper``, the share of (non-tied) pixels whose larger
        weight goes to the brighter / larger-gradient source.

    Raises
    ------
    InputError
        ``x`` does not hold exactly two sources (the statistics compare a
        pair).
    """
    if x.dim() != 4 or x.shape[1] != 2:
        raise InputError(f"weight_map_stats compares two sources; got sources of shape {tuple(x.shape)}")
    terms = proposal_terms(weights[0] if len(weights) == 1 else tuple(weights))
    g = sobel_gradient(x)
    brighter = x[:, 0] > x[:, 1]
    sharper = g[:, 0] > g[:, 1]
    clear_int = (x[:, 0] - x[:, 1]).abs() >= _TIE
    clear_grad = (g[:, 0] - g[:, 1]).abs() >= _TIE
    out: dict[str, float] = {}
    for term, w in terms.items():
        name = _SHORT.get(term, term)
        p = w.clamp_min(1e-12)
        out[f"{name}_first"] = float(w[:, 0].mean())
        out[f"{name}_entropy"] = float((-(p * p.log2()).sum(1)).mean())
        first_wins = w[:, 0] > w[:, 1]
        for target, mask, label in ((brighter, clear_int, "brighter"), (sharper, clear_grad, "sharper")):
            n = int(mask.sum())
            out[f"{name}_to_{label}"] = float((first_wins == target)[mask].float().mean()) if n else float("nan")
    return out


def meta_gradient_report(trainer: "Trainer", batches: int = 16, lr: float | None = None,
                         lam: float | None = None) -> dict[str, float]:
    """Meta-gradient signal-to-noise, direct-term size and weight-map statistics at the trainer's state.

    Parameters
    ----------
    trainer : Trainer
        With a learnable proposer; nothing is updated (its samplers advance).
    batches : int
        Number ``K`` of (inner, outer) batch pairs.
    lr : float, optional
        Inner step size; default the run's learning rate at its current step.
    lam : float, optional
        Gradient-term weight; default the run's at its current step.

    Returns
    -------
    dict of str to float
        ``meta_snr``, ``direct_snr``, ``noise_floor`` (``1 / sqrt(K)``),
        ``meta_norm`` and ``direct_norm`` (mean per-batch norms),
        ``direct_over_meta`` (their ratio, after the authors' division of the
        outer loss by ``accumulate``), ``cosine`` (between the two mean
        gradients), ``direct_share`` (share of the summed step's norm that
        the direct term makes), ``meta_rec`` (mean outer reconstruction
        loss), and the :func:`weight_map_stats` averaged over the batches.
    """
    if batches < 2:
        raise ValueError("batches must be at least 2")
    c = trainer.config
    step = min(trainer.step, c.steps - 1)
    run_lr, _, run_lam = schedule.rates(c, trainer.schedule, step, 0.0)
    lr, lam = run_lr if lr is None else lr, run_lam if lam is None else lam
    outer_weight = 1.0 / c.accumulate if trainer.schedule is not None else 1.0
    params = [p for p in trainer.proposer_net.parameters() if p.requires_grad]
    metas, directs, maps, rec = [], [], [], []
    for _ in range(batches):
        meta, direct, losses, inner = trainer.meta_gradients(lr, lam, direct=True, outer_weight=outer_weight)
        metas.append(_flat(meta, params))
        directs.append(_flat(direct, params))
        rec.append(losses["meta_rec"])
        half = inner["x"].shape[0] // 2 if c.swap else inner["x"].shape[0]
        maps.append(weight_map_stats(inner["x"][:half], {k: w[:half] for k, w in inner["weights"].items()}))
    meta_mean, direct_mean = torch.stack(metas).mean(0), torch.stack(directs).mean(0)
    meta_norm = sum(float(v.norm()) for v in metas) / batches
    direct_norm = sum(float(v.norm()) for v in directs) / batches
    denom = float(meta_mean.norm() * direct_mean.norm())
    report = {
        "batches": float(batches), "lr": float(lr), "lambda_grad": float(lam),
        "meta_snr": _snr(metas), "direct_snr": _snr(directs), "noise_floor": 1 / math.sqrt(batches),
        "meta_norm": meta_norm, "direct_norm": direct_norm,
        "direct_over_meta": direct_norm / meta_norm if meta_norm > 0 else float("inf"),
        "cosine": float(meta_mean @ direct_mean) / denom if denom > 0 else float("nan"),
        "direct_share": float(direct_mean.norm()) / max(float((direct_mean + meta_mean).norm()), 1e-300),
        "meta_rec": sum(rec) / batches,
    }
    for key in maps[0]:
        values = [m[key] for m in maps if not math.isnan(m[key])]
        report[key] = sum(values) / len(values) if values else float("nan")
    return report
