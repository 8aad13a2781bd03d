"""``--meta-detail``: the max-gradient term in P's meta-objective rewards the sharper source (issue 21)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from fusekit.errors import ParameterError  # noqa: E402
from fusekit.training.config import TrainConfig  # noqa: E402
from fusekit.training.distributed import Group  # noqa: E402
from fusekit.training.losses import sobel_gradient  # noqa: E402
from fusekit.training.meta import MetaStep  # noqa: E402


class SharpnessProposer(nn.Module):
    """Intensity weights ``softmax(gain * |grad x_s|)`` over the sources: one parameter, ``gain``."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(0.0))

    def forward(self, x):
        return {"intensity": torch.softmax(self.gain * sobel_gradient(x), dim=1)}


class FixedBatches:
    """The same (sources, targets) for every draw, so two meta-objectives see identical data."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def draw(self, meta: bool = False):
        return self.x, self.x


def focus_pair(seed: int = 0) -> torch.Tensor:
    """``1 x 2 x 24 x 24``: a textured image (source 0) and a box-blurred copy of it (source 1)."""
    sharp = torch.rand(1, 1, 24, 24, generator=torch.Generator().manual_seed(seed))
    blurred = nn.functional.avg_pool2d(nn.functional.pad(sharp, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    return torch.cat([sharp, blurred], dim=1)


def meta_gradient_on_gain(meta_detail: float) -> tuple[float, dict]:
    torch.manual_seed(0)
    fuser = nn.Conv2d(2, 1, 3, padding=1)
    recon = nn.Conv2d(1, 2, 3, padding=1)
    proposer = SharpnessProposer()
    config = TrainConfig(task="mfif", learn_weights="intensity", meta_detail=meta_detail)
    config.validate()
    step = MetaStep(fuser, proposer, recon, FixedBatches(focus_pair()), config, None, Group(), learnable=True)
    grads, _, losses, _ = step.gradients(0, lr=0.5, lam=1.0)
    return float(grads[0]), losses


def test_detail_term_pushes_the_intensity_weights_towards_the_sharper_source():
    plain, plain_losses = meta_gradient_on_gain(0.0)
    detailed, losses = meta_gradient_on_gain(1.0)
    assert "meta_detail" not in plain_losses and losses["meta_detail"] > 0
    assert losses["meta_rec"] == pytest.approx(plain_losses["meta_rec"])  # the reconstruction part is unchanged
    # gradient descent on P moves gain up (more weight to the larger gradient) by the detail term alone
    assert detailed - plain < 0


def test_detail_loss_is_zero_when_the_fused_image_is_the_sharper_source():
    x = focus_pair(1)
    step = MetaStep(nn.Identity(), SharpnessProposer(), nn.Identity(), FixedBatches(x),
                    TrainConfig(task="mfif", meta_detail=1.0), None, Group(), learnable=True)
    interior = (slice(None), slice(None), slice(3, -3), slice(3, -3))
    sharper_everywhere = (sobel_gradient(x[:, :1]) >= sobel_gradient(x[:, 1:]))[interior].float().mean()
    assert float(sharper_everywhere) > 0.95  # the box blur leaves source 0 with the larger gradient
    assert float(step.detail_loss(x, x[:, :1])) < float(step.detail_loss(x, x[:, 1:])) / 5


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_meta_detail_must_be_finite_and_not_negative(value):
    with pytest.raises(ParameterError, match="meta-detail"):
        TrainConfig(task="mfif", meta_detail=value).validate()
