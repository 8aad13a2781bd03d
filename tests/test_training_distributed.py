"""Data-parallel training (torch.distributed, gloo on CPU): two processes equal one with both batches."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available():  # pragma: no cover
    pytest.skip("torch.distributed is not available", allow_module_level=True)

from fusekit.training.distributed import Group, sampler_seed  # noqa: E402

PATCH = 16


def _patches(rank: int, n: int = 2) -> np.ndarray:
    """Textured pairs, different for each rank (what its sampler would draw)."""
    rng = np.random.default_rng(100 + rank)
    return rng.random((n, 2, PATCH, PATCH)).astype(np.float32)


class _FixedSampler:
    """Always the same batch: makes the distributed and single-process runs comparable."""

    def __init__(self, patches: np.ndarray) -> None:
        self.patches = patches

    def sample(self, batch_size: int) -> np.ndarray:
        assert batch_size == len(self.patches)
        return self.patches.copy()

    def state(self) -> dict:
        return {}

    def set_state(self, state: dict) -> None:
        pass


def _train(group: Group, patches: np.ndarray, proposer_name: str, steps: int,
           run: bool = True) -> dict[str, torch.Tensor]:
    """The three networks' weights after ``steps`` steps (or as built, ``run=False``)."""
    from fusekit.training.fixed import FixedLossProposer
    from fusekit.training.trainer import TrainConfig, Trainer
    from fusekit_refusion.fuser import ReFusion
    from fusekit_refusion.loss_proposer import ReFusionLossProposer
    from fusekit_refusion.reconstructor import ReFusionReconstructor

    config = TrainConfig(task="ivif", steps=steps, batch_size=len(patches), patch_size=PATCH, meta_steps=1,
                         fusion_steps=1, warmup_steps=0, lr_schedule="constant", seed=3, ramp_fraction=0)
    proposer = FixedLossProposer(task="ivif") if proposer_name == "fixed" else ReFusionLossProposer()
    trainer = Trainer(ReFusion(), proposer, ReFusionReconstructor(), _FixedSampler(patches), config,
                      progress=False, group=group)
    if run:
        trainer.run()
    nets = {"fuser": trainer.fuser_net, "recon": trainer.recon_net, "proposer": trainer.proposer_net}
    return {f"{name}.{k}": v.detach().clone() for name, net in nets.items() for k, v in net.state_dict().items()}


def _worker(rank: int, world: int, port: int, out: str, proposer_name: str, steps: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from fusekit.training.distributed import join_from_environment

    group = join_from_environment("cpu")
    try:
        state = _train(group, _patches(rank), proposer_name, steps)
    finally:
        group.leave()
    torch.save(state, Path(out) / f"rank{rank}.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_group(tmp_path: Path, proposer_name: str, steps: int) -> list[dict[str, torch.Tensor]]:
    import torch.multiprocessing as mp

    plugins = str(Path(__file__).resolve().parents[1] / "plugins")
    if plugins not in sys.path:  # spawned workers import the ReFusion plugin like this process
        sys.path.insert(0, plugins)
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), proposer_name, steps), nprocs=2, join=True)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], **tol) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k, **tol)


@pytest.mark.usefixtures("torch_one_thread")
def test_two_processes_take_the_step_of_one_process_with_both_batches(tmp_path: Path):
    """Averaged gradients: 2 ranks x 2 pairs give the weights of 1 process x 4 pairs."""
    ranks = _run_group(tmp_path, "fixed", steps=2)
    _assert_close(ranks[0], ranks[1], rtol=0, atol=0)          # the ranks never drift apart
    single = _train(Group(), np.concatenate([_patches(0), _patches(1)]), "fixed", steps=2)
    _assert_close(ranks[0], single, rtol=1e-4, atol=1e-6)
    alone = _train(Group(), _patches(0), "fixed", steps=2)      # not what rank 0's batch alone gives
    assert any(not torch.allclose(alone[k], ranks[0][k], rtol=1e-4, atol=1e-6) for k in alone if k.startswith("fuser."))


@pytest.mark.usefixtures("torch_one_thread")
def test_meta_learning_keeps_the_ranks_identical(tmp_path: Path):
    """The learnable proposer's meta-gradient is averaged too: after meta and fusion
    steps every rank holds the same three networks, and the proposer has moved."""
    ranks = _run_group(tmp_path, "refusion", steps=2)
    _assert_close(ranks[0], ranks[1], rtol=0, atol=0)
    start = _train(Group(), _patches(0), "refusion", steps=2, run=False)
    moved = [k for k in start if k.startswith("proposer.") and not torch.equal(start[k], ranks[0][k])]
    assert moved


def test_sampler_seeds_differ_by_rank_and_rank_0_keeps_the_seed():
    assert sampler_seed(7, 0) == 7
    seeds = {sampler_seed(7, r) for r in range(4)}
    assert len(seeds) == 4
    assert sampler_seed(7, 2) == sampler_seed(7, 2)


def test_single_process_group_is_inert():
    group = Group()
    assert not group.active and group.is_main
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 2.0)
    group.average_gradients([p])
    assert p.grad.tolist() == [2.0, 2.0, 2.0]
    assert group.max(1.5, torch.device("cpu")) == 1.5


def test_world_size_without_torchrun_is_a_clear_error(monkeypatch):
    from fusekit.errors import InputError
    from fusekit.training.distributed import join_from_environment

    for var in ("MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(InputError, match="start the command with torchrun"):
        join_from_environment("cpu")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not join_from_environment("cpu").active
