"""The order-equivariant proposer wrapper: a slot preference cancels in the geometric mean (issue 21)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from fusekit.errors import ParameterError  # noqa: E402
from fusekit.training.config import TrainConfig  # noqa: E402
from fusekit.training.symmetric import OrderEquivariant  # noqa: E402


class BiasedByContent(nn.Module):
    """Softmax over the sources of ``gain * source + bias[slot]``: content and a slot preference."""

    def __init__(self, gain: float, bias: tuple[float, ...]) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(gain))
        self.bias = nn.Parameter(torch.tensor(bias).view(1, -1, 1, 1))

    def forward(self, x):
        return {"intensity": torch.softmax(self.gain * x + self.bias, dim=1)}


@pytest.mark.parametrize("sources", [2, 3])
def test_geometric_mean_cancels_a_slot_preference_and_gives_it_no_gradient(sources):
    x = torch.rand(2, sources, 5, 5)
    strong = OrderEquivariant(BiasedByContent(3.0, (8.0,) + (0.0,) * (sources - 1)), "geometric")
    none = OrderEquivariant(BiasedByContent(3.0, (0.0,) * sources), "geometric")
    w = strong(x)["intensity"]
    torch.testing.assert_close(w, none(x)["intensity"])  # the slot bias has no effect at all
    torch.testing.assert_close(w, torch.softmax(3.0 * x, dim=1))  # only content is left
    w.pow(2).sum().backward()
    assert float(strong.inner.bias.grad.abs().max()) < 1e-6
    assert float(strong.inner.gain.grad.abs()) > 1e-3  # content still learns


def test_arithmetic_mean_hides_a_saturated_slot_rule_as_an_even_split():
    x = torch.rand(1, 2, 4, 4)
    sym = OrderEquivariant(BiasedByContent(0.0, (60.0, 0.0)), "arithmetic")
    w = sym(x)["intensity"]
    torch.testing.assert_close(w, torch.full_like(w, 0.5))
    w[:, 0].sum().backward()
    assert float(sym.inner.bias.grad.abs().max()) < 1e-12  # saturated: nothing moves it any more


def test_unknown_mean_is_refused():
    with pytest.raises(ValueError, match="mean"):
        OrderEquivariant(nn.Identity(), "harmonic")
    with pytest.raises(ParameterError, match="symmetric-mean"):
        TrainConfig(task="mfif", symmetric_mean="harmonic").validate()


class LogBiasedByContent(BiasedByContent):
    """:class:`BiasedByContent` with the ``log_proposal`` method the ``"logit"`` mean uses."""

    def log_proposal(self, x):
        return {"intensity": torch.log_softmax(self.gain * x + self.bias, dim=1)}


def test_logit_mean_keeps_content_learning_when_the_slot_preference_underflows():
    # a slot gap of 200 underflows float32's softmax: the floored geometric mean sees an exact one-hot,
    # the logit mean still sees (and differentiates) the content part
    x = torch.rand(2, 2, 5, 5)
    floored = OrderEquivariant(LogBiasedByContent(3.0, (200.0, 0.0)), "geometric")
    w = floored(x)["intensity"]
    torch.testing.assert_close(w, torch.full_like(w, 0.5))
    w[:, 0].pow(2).sum().backward()
    assert float(floored.inner.gain.grad.abs()) == 0.0  # frozen: what the MFIF and MEIF runs ended in

    logit = OrderEquivariant(LogBiasedByContent(3.0, (200.0, 0.0)), "logit")
    w = logit(x)["intensity"]
    torch.testing.assert_close(w, torch.softmax(3.0 * x, dim=1))  # only content is left
    w[:, 0].pow(2).sum().backward()
    assert float(logit.inner.gain.grad.abs()) > 1e-3
    assert float(logit.inner.bias.grad.abs().max()) < 1e-6


def test_logit_mean_equals_geometric_mean_away_from_underflow():
    x = torch.rand(1, 2, 4, 4)
    inner = LogBiasedByContent(2.0, (1.5, 0.0))
    torch.testing.assert_close(OrderEquivariant(inner, "logit")(x)["intensity"],
                               OrderEquivariant(inner, "geometric")(x)["intensity"])


def test_refusion_proposer_log_proposal_is_the_log_of_its_weights():
    from fusekit_refusion.meta_networks import LossProposalNet

    torch.manual_seed(0)
    net = LossProposalNet().eval()
    x = torch.rand(1, 2, 16, 16)
    with torch.no_grad():
        for w, log_w in zip(net(x), net.log_proposal(x)):
            torch.testing.assert_close(torch.log(w), log_w, atol=1e-5, rtol=1e-5)
