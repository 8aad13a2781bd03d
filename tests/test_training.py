"""Trainer library: losses, fixed proposer, data sampling, meta/fusion steps, determinism, resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fusekit.errors import InputError, ParameterError, WeightsError  # noqa: E402
from fusekit.training.data import (  # noqa: E402
    PatchSampler, find_pairs, load_pairs, load_patch_file, swap_augment)
from fusekit.training.fixed import FixedLossProposer  # noqa: E402
from fusekit.training.losses import fusion_loss, reconstruction_loss, sobel_gradient  # noqa: E402
from fusekit.training.trainer import TrainConfig, Trainer, TrainingInterrupted  # noqa: E402
from fusekit_refusion.fuser import ReFusion  # noqa: E402
from fusekit_refusion.loss_proposer import ReFusionLossProposer  # noqa: E402
from fusekit_refusion.reconstructor import ReFusionReconstructor  # noqa: E402

from .conftest import DATA  # noqa: E402

TINY = dict(steps=6, batch_size=2, patch_size=16, meta_steps=1, fusion_steps=2, warmup_steps=0)



pytestmark = pytest.mark.usefixtures("torch_one_thread")

def _write(path: Path, array: np.ndarray) -> None:
    from fusekit.io import write_image

    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, array)


def _textured(seed: int, shape=(40, 48)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random(shape).astype(np.float32)


@pytest.fixture(scope="module")
def stacks() -> list[np.ndarray]:
    """Three small real IVIF pairs (crops of MSRS train), or textured noise without the data."""
    folder = DATA / "ivif" / "msrs" / "train"
    if folder.is_dir():
        full = load_pairs(find_pairs([folder], "ivif")[:3], 16)
        return [s[:, 200:264, 300:364].copy() for s in full]
    return [np.stack([_textured(i), _textured(i + 10)]) for i in range(3)]


def _trainer(stacks, tmp_path=None, proposer=None, seed=0, **overrides) -> Trainer:
    config = TrainConfig(task="ivif", seed=seed, **{**TINY, **overrides})
    sampler = PatchSampler(stacks, config.patch_size, seed=seed)
    return Trainer(ReFusion(), proposer or ReFusionLossProposer(), ReFusionReconstructor(), sampler, config,
                   checkpoint_path=(tmp_path / "ck.pt") if tmp_path else None,
                   log_path=(tmp_path / "log.csv") if tmp_path else None, progress=False)


def _state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


# -- losses -------------------------------------------------------------------
def test_sobel_of_a_step_edge_is_hand_computable():
    step = torch.zeros(1, 1, 5, 5)
    step[..., 3:] = 0.5
    g = sobel_gradient(step)
    # interior rows: Sobel_x response to a 0.5 step is (1 + 2 + 1) * 0.5 = 2 on both sides of the edge
    assert g[0, 0, 2].tolist() == [0.0, 0.0, 2.0, 2.0, 2.0]  # the zero padding makes a falling edge at the border


def test_fusion_loss_with_one_hot_weights_targets_the_selected_source():
    a, b = torch.rand(2, 1, 1, 8, 8)
    src = torch.cat([a, b], dim=1)
    fused = torch.rand(1, 1, 8, 8)
    pick_a = torch.cat([torch.ones_like(a), torch.zeros_like(b)], dim=1)
    loss, parts = fusion_loss(src, fused, {"intensity": pick_a, "gradient": pick_a}, lambda_grad=0.0)
    assert torch.allclose(loss, ((a - fused) ** 2).mean())
    assert torch.allclose(parts["intensity"], loss)
    loss_g, _ = fusion_loss(src, a, (pick_a, pick_a), lambda_grad=3.0)  # a pair: intensity, gradient
    assert loss_g.item() == pytest.approx(0.0, abs=1e-12)  # fused == selected source: no loss at all


def test_fusion_loss_is_differentiable_in_the_weights():
    src = torch.rand(1, 2, 8, 8)
    w = torch.full((1, 2, 8, 8), 0.5, requires_grad=True)
    loss, _ = fusion_loss(src, torch.rand(1, 1, 8, 8), {"intensity": w, "gradient": w}, 1.0)
    loss.backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_reconstruction_loss_counts_the_worse_source():
    t = torch.rand(1, 2, 6, 6)
    assert reconstruction_loss(t, t.clone()).item() == 0.0
    flat = torch.full((1, 2, 6, 6), 0.5)
    off = flat.clone()
    off[:, 1] += 0.1  # source 1 off by 0.1 everywhere; only the zero-padded border has gradients
    border = sobel_gradient(torch.full((1, 1, 6, 6), 0.1))
    expected = 0.1 ** 2 + (border ** 2).mean().item()
    assert reconstruction_loss(flat, off).item() == pytest.approx(expected, rel=1e-5)
    # the mean reduction halves it: source 0 is rebuilt exactly, source 1 is off
    assert reconstruction_loss(flat, off, "mean").item() == pytest.approx(expected / 2, rel=1e-5)
    with pytest.raises(InputError):
        reconstruction_loss(t, t[:, :1])
    with pytest.raises(InputError, match="reduction"):
        reconstruction_loss(t, t, "sum")


def test_absolute_reconstruction_error_does_not_favour_blends_over_selections():
    # two flat sources 0.4 apart; a reconstructor that rebuilds the blend's sources to the blend itself
    # (off by d/2 each) against one that rebuilds a selection's kept source exactly and the other not at all
    sources = torch.cat([torch.full((1, 1, 6, 6), 0.3), torch.full((1, 1, 6, 6), 0.7)], 1)
    from_blend = torch.full_like(sources, 0.5)
    from_selection = torch.full_like(sources, 0.3)
    squared = [reconstruction_loss(sources, r, "mean").item() for r in (from_blend, from_selection)]
    absolute = [reconstruction_loss(sources, r, "mean", "absolute").item() for r in (from_blend, from_selection)]
    assert squared[0] < squared[1] / 1.5  # squared errors: the blend is cheaper to rebuild from
    assert absolute[0] == pytest.approx(absolute[1], rel=1e-5)  # absolute: the same cost
    assert reconstruction_loss(sources, sources.clone(), "max", "absolute").item() == 0.0
    with pytest.raises(InputError, match="error"):
        reconstruction_loss(sources, sources, "mean", "cubed")
    with pytest.raises(ParameterError, match="rec-error"):
        TrainConfig(task="mfif", rec_error="cubed").validate()


# -- fixed loss proposer -----------------------------------------------------------
def test_fixed_proposer_selects_max_intensity_and_max_gradient():
    flat = torch.full((1, 1, 8, 8), 0.9)
    edgy = torch.zeros(1, 1, 8, 8)
    edgy[..., 4:] = 0.5
    w_int, w_grad = FixedLossProposer(task="ivif").build_network()(torch.cat([flat, edgy], 1))
    assert torch.equal(w_int[:, 0], torch.ones(1, 8, 8))          # 0.9 > edgy everywhere
    assert torch.equal(w_grad[0, 1, 2, 3:5], torch.ones(2))        # the edge wins the gradient term
    assert torch.equal(w_int.sum(1), torch.ones(1, 8, 8)) and torch.equal(w_grad.sum(1), torch.ones(1, 8, 8))
    w_mean, _ = FixedLossProposer(task="meif").build_network()(torch.cat([flat, edgy], 1))
    assert torch.equal(w_mean, torch.full_like(w_mean, 0.5))
    with pytest.raises(ParameterError):
        FixedLossProposer(intensity="median")


# -- data ---------------------------------------------------------------------------
def test_find_pairs_orders_sources_and_rejects_bad_folders(tmp_path):
    good = tmp_path / "good"
    for name in ("1", "2"):
        _write(good / "mri" / f"{name}.png", _textured(1))
        _write(good / "pet" / f"{name}.png", _textured(2))
    pairs = find_pairs([good], "mif")
    assert [(a.parent.name, b.parent.name) for a, b in pairs] == [("pet", "mri")] * 2
    empty = tmp_path / "empty"
    (empty / "ir").mkdir(parents=True)
    (empty / "vi").mkdir()
    with pytest.raises(InputError, match="no images"):
        find_pairs([empty], "ivif")
    with pytest.raises(InputError, match="sub-folder named ir"):
        find_pairs([good], "ivif")
    with pytest.raises(InputError, match="does not exist"):
        find_pairs([tmp_path / "nope"], "ivif")
    odd = tmp_path / "odd"
    _write(odd / "ir" / "1.png", _textured(1))
    _write(odd / "vi" / "2.png", _textured(2))
    with pytest.raises(InputError, match="make no pair.*no image named '1' in vi/"):
        find_pairs([odd], "ivif")


def test_find_pairs_accepts_every_folder_alias_in_slot_order(tmp_path):
    data = tmp_path / "data"
    for name in ("2", "1"):
        _write(data / "visible" / f"{name}.png", _textured(1))
        _write(data / "Infrared" / f"{name}.jpg", _textured(2))
    pairs = find_pairs([data], "ivif")
    assert [(a.parent.name, b.parent.name, a.stem) for a, b in pairs] == [
        ("Infrared", "visible", "1"), ("Infrared", "visible", "2")]
    for task, first, second in (("mfif", "near", "far"), ("meif", "under", "over"), ("mif", "spect", "mri")):
        folder = tmp_path / task
        _write(folder / second / "x.png", _textured(3))
        _write(folder / first / "x.png", _textured(4))
        assert [(a.parent.name, b.parent.name) for a, b in find_pairs([folder], task)] == [(first, second)]
    _write(data / "Infrared" / "2.png", _textured(5))
    with pytest.raises(InputError, match="several image files named '2'"):
        find_pairs([data], "ivif")


def test_load_pairs_rejects_small_and_mismatched_images(tmp_path):
    d = tmp_path / "d"
    _write(d / "ir" / "1.png", _textured(1, (20, 20)))
    _write(d / "vi" / "1.png", _textured(2, (20, 20)))
    pairs = find_pairs([d], "ivif")
    assert load_pairs(pairs, 16)[0].shape == (2, 20, 20)
    with pytest.raises(InputError, match="smaller than the 32-pixel patch"):
        load_pairs(pairs, 32)
    _write(d / "vi" / "1.png", _textured(2, (20, 24)))
    with pytest.raises(InputError, match="differ in size"):
        load_pairs(pairs, 16)


def test_sampler_is_seeded_skips_flat_patches_and_restores_state():
    flat = np.full((2, 64, 64), 0.3, np.float32)
    textured = np.stack([_textured(3, (64, 64)), _textured(4, (64, 64))])
    a = PatchSampler([flat, textured], 16, seed=5)
    b = PatchSampler([flat, textured], 16, seed=5)
    x = a.sample(8)
    assert x.shape == (8, 2, 16, 16) and x.dtype == np.float32
    assert np.array_equal(x, b.sample(8))
    assert (x.reshape(8, 2, -1).std(axis=2).max(axis=1) >= 0.02).all()  # the flat image never shows up
    state = a.state()
    first = a.sample(3)
    a.set_state(state)
    assert np.array_equal(first, a.sample(3))
    with pytest.raises(InputError, match="no patch with contrast"):
        PatchSampler([flat], 16, seed=0).sample(1)
    with pytest.raises(InputError, match="smaller than the 80-pixel"):
        PatchSampler([textured], 80)


def test_swap_augment_keeps_targets_in_source_order():
    x = np.random.default_rng(0).random((2, 2, 4, 4)).astype(np.float32)
    inputs, targets = swap_augment(x)
    assert inputs.shape == targets.shape == (4, 2, 4, 4)
    assert np.array_equal(inputs[2:, 0], x[:, 1]) and np.array_equal(inputs[2:, 1], x[:, 0])
    assert np.array_equal(targets[2:], x)


def test_patch_file_is_validated(tmp_path):
    good = tmp_path / "p.npz"
    np.savez_compressed(good, patches=np.zeros((3, 2, 24, 24), np.uint8))
    assert load_patch_file(good, 16).shape == (3, 2, 24, 24)
    with pytest.raises(InputError, match="smaller than --patch-size"):
        load_patch_file(good, 32)
    bad = tmp_path / "bad.npz"
    np.savez_compressed(bad, patches=np.zeros((3, 24, 24), np.float32))
    with pytest.raises(InputError, match="uint8 patches"):
        load_patch_file(bad, 16)
    with pytest.raises(InputError, match="does not exist"):
        load_patch_file(tmp_path / "none.npz", 16)


# -- trainer -------------------------------------------------------------------------
def test_meta_step_moves_only_the_proposer_and_fusion_step_freezes_it(stacks):
    tr = _trainer(stacks)
    f0, p0, r0 = _state(tr.fuser_net), _state(tr.proposer_net), _state(tr.recon_net)
    losses = tr.meta_step(1e-3, 1e-3, 1.0)
    assert set(losses) >= {"fuse", "rec", "meta_rec"} and all(np.isfinite(v) for v in losses.values())
    assert all(torch.equal(f0[k], v) for k, v in tr.fuser_net.state_dict().items())
    assert all(torch.equal(r0[k], v) for k, v in tr.recon_net.state_dict().items())
    assert any(not torch.equal(p0[k], v) for k, v in tr.proposer_net.state_dict().items())
    p1 = _state(tr.proposer_net)
    tr.fusion_step(1e-3, 1.0)
    assert all(torch.equal(p1[k], v) for k, v in tr.proposer_net.state_dict().items())
    assert any(not torch.equal(f0[k], v) for k, v in tr.fuser_net.state_dict().items())


def test_the_fusion_step_works_without_a_trainer(stacks):
    """A component takes its inputs explicitly: here the hand-made weights instead of a proposer."""
    from fusekit.training.data import Batches
    from fusekit.training.distributed import Group
    from fusekit.training.fusion import FusionStep

    torch.manual_seed(0)
    fuser_net, recon_net = ReFusion().build_network(), ReFusionReconstructor().build_network()
    batches = Batches(PatchSampler(stacks, 16, seed=0), 2, True, torch.device("cpu"))
    step = FusionStep(fuser_net, recon_net, FixedLossProposer(task="ivif").build_network(), batches,
                      TrainConfig(task="ivif", **TINY), Group())
    f0 = _state(fuser_net)
    losses = step(0, 1e-3, 1.0)
    assert set(losses) == {"fuse", "fuse_int", "fuse_grad", "rec"} and all(np.isfinite(v) for v in losses.values())
    assert any(not torch.equal(f0[k], v) for k, v in fuser_net.state_dict().items())


def test_schedule_alternates_and_fixed_loss_skips_meta(stacks):
    tr = _trainer(stacks)
    assert [tr.phase_of(i) for i in range(6)] == ["meta", "fusion", "fusion"] * 2
    fixed = _trainer(stacks, proposer=FixedLossProposer(task="ivif"))
    assert {fixed.phase_of(i) for i in range(6)} == {"fusion"}
    result = fixed.run()
    assert result.step == 6 and "meta_rec" not in result.losses


def test_training_is_deterministic_and_resume_continues_exactly(stacks, tmp_path):
    full = _trainer(stacks, tmp_path / "a")
    result = full.run()
    assert result.stopped == "done" and result.step == 6
    again = _trainer(stacks, tmp_path / "b")
    again.run()
    for k, v in full.fuser_net.state_dict().items():
        assert torch.equal(v, again.fuser_net.state_dict()[k])
    # stop after 3 steps (Ctrl-C), then resume to 6: same weights as the uninterrupted run
    part = _trainer(stacks, tmp_path / "c")

    def interrupt(step, losses):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted) as info:
        part.run(on_step=interrupt)
    assert info.value.checkpoint == tmp_path / "c" / "ck.pt" and info.value.checkpoint.is_file()
    resumed = _trainer(stacks, tmp_path / "c")
    resumed.load_checkpoint(tmp_path / "c" / "ck.pt")
    assert resumed.step == 3
    resumed.run()
    for name in ("fuser_net", "proposer_net", "recon_net"):
        for k, v in getattr(full, name).state_dict().items():
            assert torch.equal(v, getattr(resumed, name).state_dict()[k]), (name, k)
    rows = (tmp_path / "c" / "log.csv").read_text().splitlines()
    assert len(rows) == 7 and rows[-1].startswith("6,")  # header + 6 steps, none repeated


def test_resume_rejects_a_checkpoint_of_another_kind(stacks, tmp_path):
    fixed = _trainer(stacks, tmp_path, proposer=FixedLossProposer(task="ivif"), steps=1)
    fixed.run()
    learned = _trainer(stacks)
    with pytest.raises(WeightsError, match="loss proposer 'fixed'"):
        learned.load_checkpoint(tmp_path / "ck.pt")
    junk = tmp_path / "junk.pt"
    torch.save({"format": "something-else"}, junk)
    with pytest.raises(WeightsError, match="not a fusekit training checkpoint"):
        learned.load_checkpoint(junk)


def test_resume_rejects_a_checkpoint_trained_under_another_loss(stacks, tmp_path):
    _trainer(stacks, tmp_path, steps=1, learn_weights="intensity", rec_reduction="mean").run()
    with pytest.raises(WeightsError, match="--learn-weights intensity"):
        _trainer(stacks, steps=2, rec_reduction="mean").load_checkpoint(tmp_path / "ck.pt")
    with pytest.raises(WeightsError, match="--rec-reduction mean"):
        _trainer(stacks, steps=2, learn_weights="intensity").load_checkpoint(tmp_path / "ck.pt")
    same = _trainer(stacks, steps=2, learn_weights="intensity", rec_reduction="mean")
    same.load_checkpoint(tmp_path / "ck.pt")
    assert same.step == 1
    # a mean meta-objective still moves the proposer
    before = _state(same.proposer_net)
    same.meta_step(1e-3, 1e-2, 1.0)
    assert any(not torch.equal(before[k], v) for k, v in same.proposer_net.state_dict().items())
    with pytest.raises(ParameterError, match="rec-reduction"):
        _trainer(stacks, rec_reduction="sum")


def test_time_budget_stops_cleanly(stacks, tmp_path):
    tr = _trainer(stacks, tmp_path, proposer=FixedLossProposer(task="ivif"), steps=10_000, max_minutes=1e-4)
    result = tr.run()
    assert result.stopped == "time" and result.step < 10_000 and (tmp_path / "ck.pt").is_file()


def test_bad_config_values_are_rejected(stacks):
    with pytest.raises(ParameterError, match="steps"):
        _trainer(stacks, steps=0)
    with pytest.raises(ParameterError, match="device"):
        _trainer(stacks, device="tpu:7")


def test_proposer_warmup_fits_the_hand_made_weights(stacks):
    from fusekit.training.fixed_net import FixedWeights

    cold = _trainer(stacks, proposer_warmup=0, warmup_lr=3e-3)
    warm = _trainer(stacks, proposer_warmup=40, warmup_lr=3e-3)
    assert cold.warm_up_proposer() is None
    error = warm.warm_up_proposer()
    x = torch.from_numpy(np.stack([s[:, :16, :16] for s in stacks]))
    t_int, t_grad = FixedWeights("max")(x)
    soft = lambda t: t * 0.8 + 0.1  # noqa: E731 - the smoothed targets of two sources
    with torch.no_grad():
        errs = [float(((w - soft(t)) ** 2).mean()) for net in (cold, warm)
                for w, t in zip(net.proposer_net(x), (t_int, t_grad))]
    # the warmed proposer is closer to the fixed loss's weights than the untrained one
    assert errs[2] + errs[3] < 0.7 * (errs[0] + errs[1]) and error < 0.2
    # the warm-up does not touch F or R, and runs only at the start of a run
    f0 = _state(warm.fuser_net)
    assert all(torch.equal(f0[k], v) for k, v in _trainer(stacks).fuser_net.state_dict().items())


def test_init_from_a_checkpoint_or_weights_starts_at_step_zero(stacks, tmp_path):
    fixed = _trainer(stacks, tmp_path, proposer=FixedLossProposer(task="ivif"), steps=2, seed=5)
    fixed.run()
    fixed.export(tmp_path / "w.safetensors")
    learned = _trainer(stacks, seed=9)
    assert learned.init_from(tmp_path / "ck.pt") == ["fuser", "reconstructor"]  # P: other proposer
    assert learned.step == 0
    for name in ("fuser_net", "recon_net"):
        for k, v in getattr(fixed, name).state_dict().items():
            assert torch.equal(v, getattr(learned, name).state_dict()[k])
    again = _trainer(stacks, seed=9)
    assert again.init_from(tmp_path / "w.safetensors") == ["fuser"]
    # the authors' .pth layout loads too (through the fuser's own loader)
    from fusekit_refusion.checkpoint import to_authors_state_dict

    torch.save(to_authors_state_dict(fixed.fuser_net), tmp_path / "authors.pth")
    third = _trainer(stacks, seed=11)
    assert third.init_from(tmp_path / "authors.pth") == ["fuser"]
    for k, v in fixed.fuser_net.state_dict().items():
        assert torch.equal(v, third.fuser_net.state_dict()[k])
    other_task = Trainer(ReFusion(), ReFusionLossProposer(), ReFusionReconstructor(),
                         PatchSampler(stacks, 16), TrainConfig(task="mif", **TINY), progress=False)
    with pytest.raises(WeightsError, match="for task 'ivif'"):
        other_task.init_from(tmp_path / "w.safetensors")
    with pytest.raises(WeightsError, match="for task 'ivif'"):
        other_task.init_from(tmp_path / "ck.pt")
    with pytest.raises(InputError, match="does not exist"):
        again.init_from(tmp_path / "missing.ckpt")
    for junk in ("junk.safetensors", "junk.pth"):
        (tmp_path / junk).write_bytes(b"not weights")
        with pytest.raises(WeightsError, match=junk):
            again.init_from(tmp_path / junk)


def test_learning_only_the_intensity_weights_keeps_the_fixed_gradient_weights(stacks):
    from fusekit.training.fixed_net import FixedWeights

    x = torch.from_numpy(np.stack([s[:, :16, :16] for s in stacks]))
    both = _trainer(stacks)
    only_int = _trainer(stacks, learn_weights="intensity")
    with torch.no_grad():
        p_int, p_grad = both.loss_weights(x).values()
        w_int, w_grad = only_int.loss_weights(x).values()
    assert torch.equal(w_int, p_int)                                 # same seed: the proposer's own
    assert torch.equal(w_grad, FixedWeights("max")(x)[1])           # the hand-made edge selection
    assert not torch.equal(p_grad, w_grad)
    # meta-learning still moves the proposer, through the intensity weights alone
    before = _state(only_int.proposer_net)
    only_int.meta_step(1e-3, 1e-2, 1.0)
    assert any(not torch.equal(before[k], v) for k, v in only_int.proposer_net.state_dict().items())
    with pytest.raises(ParameterError, match="learn-weights"):
        _trainer(stacks, learn_weights="gradient")
