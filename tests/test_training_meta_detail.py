"""``--meta-detail``: the max-gradient term in P's meta-objective rewards the sharper source (issue 21)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from fusekit.errors import ParameterError  # noqa: E402
from fusekit.training.config import TrainConfig  # noqa: E402
from fusekit.training.detail import focus_target  # noqa: E402
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


def focus_scene(seed: int = 2) -> torch.Tensor:
    """``1 x 2 x 32 x 32``: one texture, left half blurred in source 0 and right half blurred in source 1."""
    sharp = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(seed))
    blurred = nn.functional.avg_pool2d(nn.functional.pad(sharp, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    left = torch.zeros(1, 1, 32, 32)
    left[..., :16] = 1.0
    return torch.cat([left * blurred + (1 - left) * sharp, left * sharp + (1 - left) * blurred], dim=1)


def test_focus_target_takes_each_half_from_the_source_that_is_sharp_there():
    x = focus_scene()
    target = focus_target(x)
    sharp = x[:, 1:, :, :16], x[:, :1, :, 16:]
    # away from the seam (the 7x7 window straddles it) each half is the sharp source, exactly
    assert torch.equal(target[..., 2:-2, :12], sharp[0][..., 2:-2, :12])
    assert torch.equal(target[..., 2:-2, 20:], sharp[1][..., 2:-2, 4:])


def test_focus_detail_loss_prefers_the_reachable_selection_to_either_source_or_a_blend():
    x = focus_scene()
    config = TrainConfig(task="mfif", meta_detail=1.0, meta_detail_target="focus")
    step = MetaStep(nn.Identity(), SharpnessProposer(), nn.Identity(), FixedBatches(x), config, None, Group(),
                    learnable=True)
    selected = focus_target(x)
    at_selection = float(step.detail_loss(x, selected))
    assert at_selection == 0.0
    for other in (x[:, :1], x[:, 1:], x.mean(dim=1, keepdim=True)):
        assert float(step.detail_loss(x, other)) > 0.01
    # the max-gradient target, by contrast, is not reached by the selection either
    max_step = MetaStep(nn.Identity(), SharpnessProposer(), nn.Identity(), FixedBatches(x),
                        TrainConfig(task="mfif", meta_detail=1.0), None, Group(), learnable=True)
    assert float(max_step.detail_loss(x, selected)) > 0


class FreeImage(nn.Module):
    """A fuser whose output is its own parameter (one grey image), so a virtual step can select per pixel."""

    def __init__(self, size: int = 32) -> None:
        super().__init__()
        self.image = nn.Parameter(torch.full((1, 1, size, size), 0.5))

    def forward(self, x):
        return self.image.expand(x.shape[0], 1, -1, -1)


def test_focus_detail_term_pushes_the_intensity_weights_towards_the_sharper_source():
    def gain_gradient(meta_detail: float) -> float:
        torch.manual_seed(0)
        config = TrainConfig(task="mfif", learn_weights="intensity", meta_detail=meta_detail,
                             meta_detail_target="focus")
        config.validate()
        step = MetaStep(FreeImage(), SharpnessProposer(), nn.Conv2d(1, 2, 3, padding=1),
                        FixedBatches(focus_scene()), config, None, Group(), learnable=True)
        return float(step.gradients(0, lr=0.5, lam=0.0)[0][0])

    assert gain_gradient(1.0) - gain_gradient(0.0) < 0


def test_meta_detail_target_must_be_known():
    with pytest.raises(ParameterError, match="meta-detail-target"):
        TrainConfig(task="mfif", meta_detail_target="sharpest").validate()
