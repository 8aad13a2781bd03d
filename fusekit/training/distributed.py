"""Data-parallel training over :mod:`torch.distributed`, as started by ``torchrun``.

``torchrun --nproc-per-node N -m fusekit train ...`` starts N copies of the
command; each finds its place in the group from the environment that
torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``). Every process builds the same networks from the same seed,
draws its own patches (a per-rank sampler seed), and before every optimiser
step the gradients are averaged over the group, so all copies take the same
step, as one process would with an N times larger batch. Only rank 0 writes
the log, checkpoints, weights and card. Multi-machine runs work the same way
(``torchrun --nnodes ...``): fusekit does no scheduling of its own.

Backends: NCCL when training on CUDA (each process on ``cuda:LOCAL_RANK``),
gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch

from ..devices import resolve_device
from ..errors import InputError

__all__ = ["Group", "join_from_environment", "sampler_seed"]


@dataclass(frozen=True)
class Group:
    """Where this process stands in a data-parallel run.

    Attributes
    ----------
    rank : int
        0 for the process that writes outputs.
    world_size : int
        Number of processes; 1 means plain single-process training.
    local_rank : int
        Index on this machine (picks the GPU).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """More than one process: gradients must be averaged."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """The process that writes logs, checkpoints and weights."""
        return self.rank == 0

    # -- collectives (no-ops for a single process) -----------------------------
    def average_gradients(self, params: Iterable[torch.Tensor]) -> None:
        """Replace each parameter's ``.grad`` by its mean over the group (one all-reduce)."""
        if not self.active:
            return
        with_grad = [p for p in params if p.grad is not None]
        for p, mean in zip(with_grad, self.average([p.grad for p in with_grad])):
            p.grad.copy_(mean)

    def average(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """Means over the group of ``tensors`` (same shapes on every rank), as new tensors."""
        if not self.active or not tensors:
            return [t.detach().clone() for t in tensors]
        import torch.distributed as dist

        flat = torch.cat([t.detach().reshape(-1) for t in tensors])
        dist.all_reduce(flat)
        flat /= self.world_size
        out, start = [], 0
        for t in tensors:
            out.append(flat[start:start + t.numel()].view_as(t))
            start += t.numel()
        return out

    def max(self, value: float, device: torch.device) -> float:
        """The largest ``value`` over the group (ranks agree on time-based decisions)."""
        if not self.active:
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())

    def broadcast_parameters(self, modules: Iterable[torch.nn.Module]) -> None:
        """Copy rank 0's parameters and buffers to every rank."""
        if not self.active:
            return
        import torch.distributed as dist

        for module in modules:
            for tensor in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(tensor.data, src=0)

    def leave(self) -> None:
        """End the process group (call once, after training)."""
        if self.active:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def join_from_environment(device: str) -> Group:
    """Join the process group that ``torchrun`` describes in the environment.

    Parameters
    ----------
    device : str
        The training device option (``cpu``, ``cuda``, ``auto``...): CUDA
        runs use the NCCL backend, CPU runs gloo.

    Returns
    -------
    Group
        ``Group()`` (a single process) when ``WORLD_SIZE`` is unset or 1.

    Raises
    ------
    InputError
        ``WORLD_SIZE`` asks for several processes but the group cannot be
        joined (e.g. ``MASTER_ADDR`` unset: not started by torchrun).
    """
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return Group()
    import torch.distributed as dist

    cuda = resolve_device(device).type == "cuda"
    local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
    if not dist.is_initialized():
        try:
            if cuda:
                torch.cuda.set_device(local_rank)
            dist.init_process_group("nccl" if cuda else "gloo")
        except (ValueError, RuntimeError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(f"WORLD_SIZE={world} asks for a torch.distributed run but joining the group "
                             f"failed ({reason}); start the command with torchrun, or unset WORLD_SIZE") from None
    return Group(dist.get_rank(), dist.get_world_size(), local_rank)


def sampler_seed(seed: int, rank: int) -> int:
    """Seed of rank ``rank``'s patch sampler: ``seed`` itself on rank 0 (so a
    single process draws what rank 0 draws), independent streams elsewhere."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])
