"""The authors' training recipe (issue 21): schedule, P's update rule, equal batches, resume, diagnostic."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fusekit.errors import ParameterError  # noqa: E402
from fusekit.training.data import PatchSampler  # noqa: E402
from fusekit.training.diagnostics import meta_gradient_report, weight_map_stats  # noqa: E402
from fusekit.training.fixed import FixedLossProposer  # noqa: E402
from fusekit.training.recipes import EpochSchedule, normalised_sgd_step  # noqa: E402
from fusekit.training.trainer import TrainConfig, Trainer  # noqa: E402
from fusekit_refusion.fuser import ReFusion  # noqa: E402
from fusekit_refusion.loss_proposer import ReFusionLossProposer  # noqa: E402
from fusekit_refusion.reconstructor import ReFusionReconstructor  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")

AUTHORS = dict(recipe="authors", epochs=2, meta_batches=3, fusion_batches=2, decay_every=1, accumulate=2,
               batch_size=1, patch_size=16, lr=1e-3)


@pytest.fixture(scope="module")
def stacks() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = [rng.random((40, 40)).astype(np.float32) for _ in range(3)]
    return [np.stack([b, np.clip(b * 0.5 + 0.3 * rng.random((40, 40)), 0, 1).astype(np.float32)]) for b in base]


def _trainer(stacks, proposer=None, tmp_path=None, **overrides) -> Trainer:
    config = TrainConfig(task="mfif", **{**AUTHORS, **overrides})
    sampler = PatchSampler(stacks, config.patch_size, seed=config.seed)
    return Trainer(ReFusion(task="mfif"), proposer or ReFusionLossProposer(), ReFusionReconstructor(), sampler,
                   config, checkpoint_path=(tmp_path / "ck.pt") if tmp_path else None, progress=False)


def _params(net) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def test_schedule_matches_the_authors_rhythm():
    s = EpochSchedule(epochs=50, meta_batches=600, fusion_batches=2000, decay_every=10, accumulate=2)
    assert s.total_steps == 50 * 2600
    assert [s.phase_of(k) for k in (0, 599, 600, 2599, 2600)] == ["meta", "meta", "fusion", "fusion", "meta"]
    # the gradient-term weight grows (epoch + 1) / 50 from 0.02 to 1; the rate falls tenfold every 10 epochs
    assert s.lambda_factor(0) == pytest.approx(0.02) and s.lambda_factor(s.total_steps - 1) == 1.0
    assert s.lr_factor(9 * 2600) == 1.0 and s.lr_factor(10 * 2600) == pytest.approx(0.1)
    assert s.lr_factor(49 * 2600) == pytest.approx(1e-4)
    assert [s.ends_window(k) for k in range(4)] == [False, True, False, True]


def test_normalised_sgd_moves_the_largest_entry_by_exactly_the_step():
    p = [torch.zeros(3), torch.zeros(2)]
    g = [torch.tensor([1e-9, -4e-9, 2e-9]), torch.tensor([0.0, 1e-9])]
    scale = normalised_sgd_step(p, g, 1e-3)
    assert scale == pytest.approx(4e-9)
    assert torch.allclose(p[0], torch.tensor([-2.5e-4, 1e-3, -5e-4]))
    assert normalised_sgd_step(p, [torch.zeros(3), None], 1.0) == 0.0  # no gradient: nothing moves


def test_normalised_sgd_leaves_a_saturated_proposer_in_place_instead_of_overflowing():
    # a MEIF run's P saturated and its meta-gradient fell to ~1e-40 (float32 subnormal); step / max|g| then
    # overflowed float32 and stopped the run ("value cannot be converted to type float without overflow")
    p = [torch.ones(3)]
    g = [torch.tensor([1e-40, -3e-40, 0.0])]
    assert normalised_sgd_step(p, g, 2.5e-2) == pytest.approx(3e-40, rel=0.1)
    assert torch.equal(p[0], torch.ones(3))
    q = [torch.zeros(1)]  # the smallest normal float32 still moves by exactly the step
    normalised_sgd_step(q, [torch.tensor([-torch.finfo(torch.float32).tiny])], 1e-3)
    assert q[0].item() == pytest.approx(1e-3)


def test_authors_run_length_comes_from_epochs_and_a_fixed_run_has_no_meta_phase(stacks):
    learned = _trainer(stacks)
    fixed = _trainer(stacks, proposer=FixedLossProposer(task="mfif"))
    assert learned.config.steps == 2 * (3 + 2) and fixed.config.steps == 2 * 2
    assert learned.opt_proposer is None  # P moves by normalised SGD, not Adam


def test_proposer_moves_only_at_window_ends_by_the_scaled_step(stacks):
    t = _trainer(stacks, proposer_step_scale=2.0)
    before = _params(t.proposer_net)
    t.meta_step_authors(1e-3, 0.5)
    t.step += 1
    assert all(torch.equal(a, b) for a, b in zip(before, _params(t.proposer_net)))  # mid-window: no move
    t.meta_step_authors(1e-3, 0.5)
    moved = max(float((a - b).abs().max()) for a, b in zip(before, _params(t.proposer_net)))
    assert moved == pytest.approx(2e-3, rel=1e-4)


def test_direct_term_switch_changes_the_update(stacks):
    on, off = _trainer(stacks, direct_term=True), _trainer(stacks, direct_term=False)
    for t in (on, off):
        for _ in range(2):
            t.meta_step_authors(1e-3, 0.5)
            t.step += 1
    diff = max(float((a - b).abs().max()) for a, b in zip(_params(on.proposer_net), _params(off.proposer_net)))
    assert diff > 1e-4


def test_learned_and_fixed_runs_train_the_fuser_on_the_same_batches(stacks, monkeypatch):
    seen: dict[str, list[torch.Tensor]] = {"learned": [], "fixed": []}
    for label, proposer in (("learned", None), ("fixed", FixedLossProposer(task="mfif"))):
        t = _trainer(stacks, proposer=proposer, epochs=1)
        original = t.batches.draw

        def spy(meta=False, original=original, label=label):
            x, y = original(meta=meta)
            if not meta:
                seen[label].append(x.clone())
            return x, y
        monkeypatch.setattr(t.batches, "draw", spy)
        t.run()
    assert len(seen["learned"]) == len(seen["fixed"]) == 2
    assert all(torch.equal(a, b) for a, b in zip(seen["learned"], seen["fixed"]))


def test_resume_in_the_middle_of_an_accumulation_window_is_exact(stacks, tmp_path):
    straight = _trainer(stacks)
    straight.run()
    first = _trainer(stacks, tmp_path=tmp_path)
    first.config.steps = 1  # stop after the first meta step: P's accumulation window is half full
    first.run()
    assert first.meta.window is not None  # the half-filled window travels in the checkpoint
    resumed = _trainer(stacks)
    resumed.load_checkpoint(tmp_path / "ck.pt")
    resumed.run()
    for a, b in zip(_params(straight.proposer_net), _params(resumed.proposer_net)):
        assert torch.equal(a, b)
    for a, b in zip(_params(straight.fuser_net), _params(resumed.fuser_net)):
        assert torch.equal(a, b)


def test_authors_recipe_refuses_settings_of_the_other_recipe():
    with pytest.raises(ParameterError, match="time-schedule"):
        TrainConfig(task="mfif", recipe="authors", time_schedule=True, max_minutes=1).validate()
    with pytest.raises(ParameterError, match="random weights"):
        TrainConfig(task="mfif", recipe="authors", proposer_warmup=10).validate()
    with pytest.raises(ParameterError, match="recipe"):
        TrainConfig(task="mfif", recipe="paper").validate()


def test_weight_map_stats_of_hand_made_selection():
    x = torch.rand(2, 2, 12, 12)
    w_int, w_grad = FixedLossProposer(intensity="max").build_network()(x)
    stats = weight_map_stats(x, w_int, w_grad)
    assert stats["int_entropy"] == pytest.approx(0.0, abs=1e-6)
    assert stats["int_to_brighter"] == 1.0 and stats["grad_to_sharper"] == 1.0
    even = torch.full_like(x, 0.5)
    assert weight_map_stats(x, even, even)["grad_entropy"] == pytest.approx(1.0)


def test_meta_gradient_report_reads_a_real_training_state(stacks):
    t = _trainer(stacks)
    report = meta_gradient_report(t, batches=3)
    assert 0.0 < report["meta_snr"] <= 1.0 + 1e-9 and 0.0 < report["direct_snr"] <= 1.0 + 1e-9
    # the meta-gradient carries the inner learning rate (1e-3): the direct term is far larger
    assert report["direct_over_meta"] > 10 and report["direct_share"] > 0.9
    assert 0.0 <= report["int_first"] <= 1.0 and report["noise_floor"] == pytest.approx(3 ** -0.5)


def test_proposer_step_can_be_kept_at_the_peak_rate(stacks):
    steady = _trainer(stacks, proposer_decay=False, direct_term=False)
    before = _params(steady.proposer_net)
    for _ in range(2):
        steady.meta_step_authors(1e-5, 0.5)  # F's rate has decayed a hundredfold ...
        steady.step += 1
    moved = max(float((a - b).abs().max()) for a, b in zip(before, _params(steady.proposer_net)))
    assert moved == pytest.approx(1e-3, rel=1e-4)  # ... P still steps at the peak rate


def test_cli_keeps_the_two_recipes_options_apart(run_cli, tmp_path):
    from .corpus import one_line_error

    patches = tmp_path / "p.npz"
    np.savez(patches, patches=(np.random.default_rng(0).random((4, 2, 24, 24)) * 255).astype(np.uint8))
    out = tmp_path / "w.safetensors"
    one_line_error(run_cli(["train", "--task", "mfif", "--patches", patches, "--epochs", "2", "-o", out]),
                   "--epochs belongs to the authors recipe", "--recipe authors")
    one_line_error(run_cli(["train", "--task", "mfif", "--patches", patches, "--recipe", "authors", "--steps", "5",
                            "-o", out]), "counts in epochs")
    result = run_cli(["train", "--task", "mfif", "--patches", patches, "--recipe", "authors", "--epochs", "1",
                      "--meta-batches", "2", "--fusion-batches", "2", "--patch-size", "16", "--no-progress",
                      "-o", out])
    assert result.exit_code == 0, result.output
    import json

    card = json.loads(out.with_suffix(".json").read_text())
    assert card["steps"] == 4 and card["config"]["recipe"] == "authors" and card["config"]["lr"] == 1e-4


def test_symmetric_proposer_swaps_its_weights_with_the_sources_and_survives_a_checkpoint(stacks, tmp_path):
    t = _trainer(stacks, symmetric_proposer=True, tmp_path=tmp_path)
    x = torch.rand(2, 2, 16, 16)
    with torch.no_grad():
        w_int, w_grad = t.proposer_net(x)
        s_int, s_grad = t.proposer_net(x.flip(1))
    assert torch.allclose(w_int, s_int.flip(1), atol=1e-6) and torch.allclose(w_grad, s_grad.flip(1), atol=1e-6)
    assert torch.allclose(w_int.sum(1), torch.ones(2, 16, 16), atol=1e-6)
    t.config.steps = 2
    t.run()
    again = _trainer(stacks, symmetric_proposer=True)
    again.load_checkpoint(tmp_path / "ck.pt")
    for a, b in zip(_params(t.proposer_net), _params(again.proposer_net)):
        assert torch.equal(a, b)
    plain = _trainer(stacks)
    with pytest.raises(Exception, match="symmetric"):
        plain.load_checkpoint(tmp_path / "ck.pt")


def test_first_interrupt_stops_at_a_step_boundary_and_resume_is_exact(stacks, tmp_path):
    import os
    import signal

    from fusekit.training.trainer import TrainingInterrupted

    straight = _trainer(stacks)
    straight.run()
    cut = _trainer(stacks, tmp_path=tmp_path)
    original = cut.meta_step_authors

    def interrupted_step(lr, lam):  # Ctrl-C arrives in the middle of step 3
        out = original(lr, lam)
        if cut.step == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return out
    cut.meta_step_authors = interrupted_step
    with pytest.raises(TrainingInterrupted):
        cut.run()
    assert cut.step == 3  # the step in flight finished; the checkpoint sits at its boundary
    resumed = _trainer(stacks)
    resumed.load_checkpoint(tmp_path / "ck.pt")
    resumed.run()
    for a, b in zip(_params(straight.fuser_net) + _params(straight.proposer_net),
                    _params(resumed.fuser_net) + _params(resumed.proposer_net)):
        assert torch.equal(a, b)


def test_train_refuses_bad_numbers_and_unwritable_outputs_before_training(run_cli, tmp_path):
    from .corpus import one_line_error

    patches = tmp_path / "p.npz"
    np.savez(patches, patches=(np.random.default_rng(0).random((4, 2, 24, 24)) * 255).astype(np.uint8))
    base = ["train", "--task", "mfif", "--patches", patches, "--steps", "2", "--patch-size", "16"]
    one_line_error(run_cli(base + ["--lr", "inf", "-o", tmp_path / "w.safetensors"]), "lr", "finite")
    one_line_error(run_cli(base + ["--threads", "-3", "-o", tmp_path / "w.safetensors"]), "--threads")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line_error(run_cli(base + ["-o", blocker / "w.safetensors"]), str(blocker))
    one_line_error(run_cli(base + ["--log", blocker / "log.csv", "-o", tmp_path / "w.safetensors"]), "--log")
    assert not (tmp_path / "w.safetensors").exists()


def test_intensity_only_proposer_reads_back_as_the_loss_it_was_trained_with(stacks):
    """``--learn-weights intensity``: the trainer's loss weights are P's intensity weights and the rule's
    gradient weights; :class:`LearnedIntensity` (what ``fusekit explain`` shows) gives exactly those."""
    from fusekit.training.partial import LearnedIntensity

    trainer = _trainer(stacks, learn_weights="intensity", symmetric_proposer=True)
    x = torch.from_numpy(np.stack(stacks[:2]))
    with torch.no_grad():
        want_int, want_grad = trainer.loss_weights(x).values()
        got_int, got_grad = LearnedIntensity(trainer.proposer_net)(x)
        raw_int, raw_grad = trainer.proposer_net(x)
    assert torch.equal(got_int, want_int) and torch.equal(got_grad, want_grad)
    assert torch.equal(got_int, raw_int)
    assert set(got_grad.unique().tolist()) == {0.0, 1.0} and not torch.equal(got_grad, raw_grad)


def test_exported_intensity_only_proposer_loads_with_the_gradient_rule(tmp_path):
    from fusekit.training.partial import LearnedIntensity
    from fusekit.training.symmetric import OrderEquivariant
    from fusekit.training.trainer import save_weights
    from fusekit_refusion.fuser import load_proposer

    net = ReFusionLossProposer().build_network()
    path = tmp_path / "p.safetensors"
    save_weights(net.state_dict(), path, {"format": "fusekit-proposer", "symmetric": "1",
                                          "learn_weights": "intensity"})
    loaded = load_proposer(path)
    assert isinstance(loaded, LearnedIntensity) and isinstance(loaded.inner, OrderEquivariant)
    x = torch.rand(1, 2, 24, 24)
    with torch.no_grad():
        _, w_grad = loaded(x)
    assert set(w_grad.unique().tolist()) == {0.0, 1.0}


def test_proposer_temperature_sharpens_the_weights_the_fuser_is_trained_with(stacks, tmp_path):
    """``--proposer-temperature 0.1``: the loss weights are P's, sharpened (still summing to 1), and an
    exported proposer with ``temperature`` in its metadata loads sharpened the same way."""
    from fusekit.training.sharpen import Sharpened
    from fusekit.training.trainer import save_weights
    from fusekit_refusion.fuser import load_proposer

    plain = _trainer(stacks, symmetric_proposer=True)
    sharp = _trainer(stacks, symmetric_proposer=True, proposer_temperature=0.1)
    assert isinstance(sharp.proposer_net, Sharpened)
    x = torch.from_numpy(np.stack(stacks[:2]))
    with torch.no_grad():
        w_plain = plain.loss_weights(x)["intensity"]
        w_sharp = sharp.loss_weights(x)["intensity"]
    assert torch.allclose(w_sharp.sum(1), torch.ones_like(w_sharp[:, 0]), atol=1e-6)
    assert (w_sharp - 0.5).abs().mean() > 3 * (w_plain - 0.5).abs().mean()  # same P, sharper map
    path = tmp_path / "p.safetensors"
    save_weights(sharp.proposer_net.inner.inner.state_dict(), path,
                 {"format": "fusekit-proposer", "symmetric": "1", "temperature": "0.1"})
    with torch.no_grad():
        assert torch.allclose(load_proposer(path)(x)[0], w_sharp, atol=1e-6)
    with pytest.raises(ParameterError):
        TrainConfig(task="mfif", proposer_temperature=0.0).validate()


def test_proposer_with_a_corrupt_temperature_is_a_weights_error(tmp_path):
    from fusekit.errors import WeightsError
    from fusekit.training.trainer import save_weights
    from fusekit_refusion.fuser import load_proposer

    path = tmp_path / "p.safetensors"
    save_weights(ReFusionLossProposer().build_network().state_dict(), path,
                 {"format": "fusekit-proposer", "temperature": "warm"})
    with pytest.raises(WeightsError, match="p.safetensors"):
        load_proposer(path)
