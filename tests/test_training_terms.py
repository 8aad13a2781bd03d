"""The trainer is generic over the number of sources and over what a loss proposer proposes (issue 23)."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from fusekit.errors import InputError, ParameterError  # noqa: E402
from fusekit.interfaces import LossProposer, Reconstructor, TorchFuser  # noqa: E402
from fusekit.training.data import PatchSampler  # noqa: E402
from fusekit.training.diagnostics import weight_map_stats  # noqa: E402
from fusekit.training.fixed import FixedLossProposer  # noqa: E402
from fusekit.training.losses import LOSS_TERMS, fusion_loss, register_loss_term  # noqa: E402
from fusekit.training.proposals import proposal_terms  # noqa: E402
from fusekit.training.symmetric import MAX_SOURCES, OrderEquivariant  # noqa: E402
from fusekit.training.trainer import TrainConfig, Trainer  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")

TINY = dict(steps=3, batch_size=1, patch_size=16, meta_steps=1, fusion_steps=1, warmup_steps=1, seed=2)


class _Conv(nn.Module):
    """``N x C_in x H x W -> N x C_out x H x W``: one 3x3 convolution, then a sigmoid or a softmax."""

    def __init__(self, c_in: int, c_out: int, softmax: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.softmax = softmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return torch.softmax(y, dim=1) if self.softmax else torch.sigmoid(y)


class TinyFuser(TorchFuser):
    name = "tiny"
    max_sources = None

    def __init__(self, sources: int = 3) -> None:
        super().__init__()
        self.sources = sources

    def build_network(self) -> nn.Module:
        return _Conv(self.sources, 1)


class TinyReconstructor(Reconstructor):
    name = "tiny"

    def __init__(self, sources: int = 3) -> None:
        self.sources = sources

    def build_network(self) -> nn.Module:
        return _Conv(1, self.sources)


class _TermsNet(nn.Module):
    """Softmax weights over the sources, proposed under each of ``terms``."""

    def __init__(self, sources: int, terms: tuple[str, ...]) -> None:
        super().__init__()
        self.net = _Conv(sources, sources, softmax=True)
        self.terms = terms

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        w = self.net(x)
        return {name: w for name in self.terms}


class TermsProposer(LossProposer):
    name = "terms"

    def __init__(self, sources: int = 3, terms: tuple[str, ...] = ("intensity",)) -> None:
        self.sources, self.terms = sources, terms

    def build_network(self) -> nn.Module:
        return _TermsNet(self.sources, self.terms)


def _stacks(sources: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random((sources, 24, 24)).astype(np.float32) for _ in range(2)]


def _train(tmp_path, proposer: LossProposer, sources: int = 3, **overrides) -> tuple[Trainer, list[dict[str, str]]]:
    config = TrainConfig(task="mfif", **{**TINY, **overrides})
    sampler = PatchSampler(_stacks(sources), config.patch_size, seed=config.seed)
    trainer = Trainer(TinyFuser(sources), proposer, TinyReconstructor(sources), sampler, config,
                      log_path=tmp_path / "log.csv", progress=False)
    before = [p.detach().clone() for p in trainer.fuser_net.parameters()]
    trainer.run()
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.fuser_net.parameters()))
    with open(tmp_path / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == config.steps and all(math.isfinite(float(r["fuse"])) for r in rows)
    return trainer, rows


def test_three_sources_train_with_the_fixed_proposer(tmp_path):
    _, rows = _train(tmp_path, FixedLossProposer(task="mfif"))
    assert all(r["phase"] == "fusion" and r["fuse_int"] and r["fuse_grad"] for r in rows)


def test_a_proposer_of_the_intensity_term_only_trains_three_sources(tmp_path):
    trainer, rows = _train(tmp_path, TermsProposer(3, ("intensity",)), symmetric_proposer=True)
    assert [r["phase"] for r in rows] == ["meta", "fusion", "meta"]
    assert all(r["fuse_int"] and not r["fuse_grad"] for r in rows)  # no gradient term in the loss
    assert float(rows[1]["fuse"]) == pytest.approx(float(rows[1]["fuse_int"]), rel=1e-5)
    assert isinstance(trainer.proposer_net, OrderEquivariant)


@pytest.fixture
def l1_term():
    register_loss_term("l1", lambda sources, fused, w: (w * (sources - fused)).abs().mean(dim=(0, 2, 3)).sum())
    yield
    del LOSS_TERMS["l1"]


def test_a_registered_extra_term_is_in_the_loss_and_the_log(tmp_path, l1_term):
    _, rows = _train(tmp_path, TermsProposer(2, ("intensity", "l1")), sources=2)
    assert all(r["fuse_l1"] and not r["fuse_grad"] for r in rows)
    src, fused = torch.rand(1, 2, 8, 8), torch.rand(1, 1, 8, 8)
    w = torch.full_like(src, 0.5)
    loss, parts = fusion_loss(src, fused, {"l1": w, "intensity": w}, lambda_grad=5.0)
    assert list(parts) == ["intensity", "l1"]  # summed in the table's order, never scaled by lambda_grad
    assert loss.item() == pytest.approx(float(parts["intensity"] + parts["l1"]), rel=1e-6)
    with pytest.raises(ParameterError, match="already registered"):
        register_loss_term("l1", lambda s, f, w: s.sum())


def test_unknown_terms_and_malformed_proposals_are_clear_errors():
    src, fused = torch.rand(1, 2, 8, 8), torch.rand(1, 1, 8, 8)
    with pytest.raises(InputError, match="unknown term.*'ssim'.*register_loss_term"):
        fusion_loss(src, fused, {"ssim": src})
    for bad in ({}, (src,), src, {"intensity": 0.5}):
        with pytest.raises(InputError, match="proposal|proposer"):
            proposal_terms(bad)


def test_order_equivariance_over_three_sources():
    net = OrderEquivariant(_TermsNet(3, ("intensity", "gradient"))).eval()
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        w = net(x)
        for order in ([1, 0, 2], [2, 0, 1]):
            moved = net(x[:, order])
            for name in w:
                assert torch.allclose(moved[name], w[name][:, order], atol=1e-6)
    assert torch.allclose(w["intensity"].sum(1), torch.ones(2, 8, 8), atol=1e-6)
    pair = OrderEquivariant(lambda x: (torch.softmax(x, 1), torch.softmax(x, 1)))(torch.rand(1, 2, 4, 4))
    assert isinstance(pair, tuple) and len(pair) == 2  # a pair in, a pair out
    with pytest.raises(InputError, match=f"at most {MAX_SOURCES} sources"):
        OrderEquivariant(_TermsNet(6, ("intensity",)))(torch.rand(1, 6, 4, 4))


def test_weight_map_stats_reads_a_mapping_and_refuses_three_sources():
    x = torch.rand(1, 2, 8, 8)
    w = torch.full_like(x, 0.5)
    one, both = weight_map_stats(x, {"intensity": w}), weight_map_stats(x, w, w)
    assert set(one) == {"int_first", "int_entropy", "int_to_brighter", "int_to_sharper"}
    assert one == pytest.approx({k: both[k] for k in one}, nan_ok=True)
    with pytest.raises(InputError, match="two sources"):
        weight_map_stats(torch.rand(1, 3, 8, 8), {"intensity": torch.rand(1, 3, 8, 8)})


def test_the_warm_up_needs_a_term_the_hand_made_loss_has(tmp_path, l1_term):
    with pytest.raises(ParameterError, match="proposer-warmup 0"):
        _train(tmp_path, TermsProposer(2, ("l1",)), sources=2, proposer_warmup=2)
