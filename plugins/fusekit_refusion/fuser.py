"""The ``refusion`` fuser: ReFusion's fusion network behind fusekit's Fuser interface.

This module imports torch only when a network is built, so registering the
plugin stays cheap.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from fusekit.errors import ParameterError
from fusekit.interfaces import TASKS, TorchFuser

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["ReFusion", "SOURCE_ORDER", "DEFAULT_CHUNK_PIXELS"]

#: Order in which each task's network expects its two sources.
SOURCE_ORDER: dict[str, tuple[str, str]] = {
    "ivif": ("infrared", "visible"),
    "mif": ("CT/PET/SPECT", "MRI"),
    "mfif": ("near focus", "far focus"),
    "meif": ("under-exposed", "over-exposed"),
}

#: Pixels per tile of the inference engine (kept in sync with engine.py,
#: duplicated here so that reading the default does not import torch).
DEFAULT_CHUNK_PIXELS = 1 << 14


class ReFusion(TorchFuser):
    """ReFusion (Bai et al., IJCV 2024): a transformer fusion network trained
    with a learned loss (meta-learning from reconstruction).

    The network fuses the luminance (Y) of two sources; colour is put back by
    fusekit's colour pipeline (chroma of the colour source, or a blend of
    both). As in the authors' inference script, the network output is
    min-max stretched to [0, 1] per image unless ``stretch=False``.

    Parameters
    ----------
    task : {"ivif", "mif", "mfif", "meif"}
        Which weights to use; also fixes the source order the network
        expects: ivif (infrared, visible), mif (CT/PET/SPECT, MRI), mfif
        (near focus, far focus), meif (under-, over-exposed).
    weights : str or path-like, optional
        A weights file to use instead of the shipped weights of ``task``: one
        of the authors' ``ReFusion_<TASK>.pth`` checkpoints (loaded with
        ``torch.load(weights_only=True)``) or a ``.safetensors`` file written by
        ``fusekit train``. Without it the shipped weights of ``task`` are
        used; if none are installed a :class:`~fusekit.errors.WeightsError`
        says so (never random weights).
    stretch : bool
        Stretch each output to its own min..max (authors' convention). A
        constant output is returned unchanged.
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
    chunk_pixels : int
        Pixels per tile of the inference engine. Memory is ``128 bytes x H x W``
        for the feature buffer plus about ``3 kB x chunk_pixels`` per worker
        thread; the result does not depend on it (the global attention is
        accumulated exactly over tiles). A 4096 x 3072 pair peaked at 2.5-3.8 GiB
        (whole process, three runs).

    Notes
    -----
    More than two sources are fused pairwise in the given order:
    ``F(F(F(s1, s2), s3), s4)``; every intermediate result is stretched like
    a final one (when ``stretch``) and enters the network in the first slot.
    The network was trained on pairs, so for three or more inputs this is a
    convenience, not the published method.

    References
    ----------
    .. [1] H. Bai, Z. Zhao, J. Zhang, Y. Wu, L. Deng, Y. Cui, B. Jiang, S. Xu,
       "ReFusion: Learning Image Fusion from Reconstruction with Learnable
       Loss via Meta-Learning", IJCV 2024, arXiv:2312.07943.

    Examples
    --------
    >>> from fusekit_refusion.fuser import ReFusion
    >>> fuser = ReFusion(task="ivif", weights="ReFusion_IVIF.pth")  # doctest: +SKIP
    >>> fused = fuser.fuse([infrared_y, visible_y])                  # doctest: +SKIP
    """

    name: ClassVar[str] = "refusion"
    tasks: ClassVar[tuple[str, ...]] = TASKS
    min_sources: ClassVar[int] = 2
    max_sources: ClassVar[int | None] = None
    summary: ClassVar[str] = "ReFusion (IJCV 2024): transformer fusion network with a meta-learned loss"

    def __init__(self, *, task: str = "ivif", weights: str | os.PathLike | None = None,
                 stretch: bool = True, device: str = "cpu",
                 chunk_pixels: int = DEFAULT_CHUNK_PIXELS) -> None:
        super().__init__(device=device)
        if task not in TASKS:
            raise ParameterError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        if weights is not None and not isinstance(weights, (str, os.PathLike)):
            raise ParameterError(f"weights must be a file path, got {type(weights).__name__}")
        if not isinstance(stretch, bool):
            raise ParameterError(f"stretch must be True or False, got {stretch!r}")
        if isinstance(chunk_pixels, bool) or not isinstance(chunk_pixels, int) or chunk_pixels < 1:
            raise ParameterError(f"chunk_pixels must be a positive integer, got {chunk_pixels!r}")
        self.task = task
        self.weights = Path(weights) if weights is not None else None
        self.stretch = stretch
        self.chunk_pixels = chunk_pixels

    # -- TorchFuser hooks --------------------------------------------------
    def build_network(self) -> "torch.nn.Module":
        from .network import ReFusionNet

        return ReFusionNet()

    def load_weights(self, network: "torch.nn.Module") -> None:
        """Load ``weights`` if given, else the shipped weights of ``task`` (sha256-checked)."""
        from .checkpoint import load_weights_file

        if self.weights is not None:
            load_weights_file(network, self.weights)
            return
        from .weights import entry_for

        load_weights_file(network, entry_for(self.task).path)

    def fuse_tensor(self, sources: "torch.Tensor") -> "torch.Tensor":
        """``N x S x H x W`` (``S >= 2``) -> ``N x 1 x H x W``, pairwise for ``S > 2``."""
        import torch

        net = self.network
        fused = sources[:, :1]
        for i in range(1, sources.shape[1]):
            pair = torch.cat([fused, sources[:, i:i + 1]], dim=1)
            fused = net.infer(pair, chunk_pixels=self.chunk_pixels)
            if self.stretch:
                fused = _stretch(fused)
        return fused


def _stretch(x: "torch.Tensor") -> "torch.Tensor":
    """Min-max stretch each image of ``N x 1 x H x W`` to [0, 1] (constant images unchanged)."""
    flat = x.flatten(1)
    lo = flat.amin(1).view(-1, 1, 1, 1)
    hi = flat.amax(1).view(-1, 1, 1, 1)
    span = hi - lo
    safe = span.clamp_min(1e-12)
    return ((x - lo) / safe).where(span > 0, x)
