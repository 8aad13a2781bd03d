"""The ``refusion`` fuser: ReFusion's fusion network behind fusekit's Fuser interface.

This module imports torch only when a network is built, so registering the
plugin stays cheap.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from fusekit.datasets import LAYOUTS
from fusekit.errors import InputError, ParameterError
from fusekit.interfaces import TASKS, Option, TorchFuser

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["ReFusion", "SOURCE_ORDER", "DEFAULT_CHUNK_PIXELS"]

#: Order in which each task's network expects its two sources (the labels of
#: the task's slots in :data:`fusekit.datasets.LAYOUTS`, the one source order).
SOURCE_ORDER: dict[str, tuple[str, ...]] = {task: tuple(slot.label for slot in slots)
                                            for task, slots in LAYOUTS.items()}

#: Pixels per tile of the inference engine (kept in sync with engine.py,
#: duplicated here so that reading the default does not import torch).
DEFAULT_CHUNK_PIXELS = 1 << 14

#: Source values this far outside [0, 1] are rounding; farther ones are refused (0-255 images, say).
RANGE_TOLERANCE = 1e-3


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
        The name of a shipped variant of ``task`` (``"fixed"``: trained
        with the hand-made loss; ``"learned"``: with ReFusion's meta-learned
        loss, where shipped; ``fusekit info refusion`` lists them), or a
        weights file to use instead of the shipped weights: one
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
        Pixels per tile of the inference engine (bands of whole rows on images
        up to ``chunk_pixels / 16`` wide). Memory is ``128 bytes x H x W`` for
        the feature buffer, and as much again for the attention values up to
        about 2 megapixels (on CPU above about 4 megapixels both are kept in
        temporary files in ``TMPDIR`` and streamed in bands of at most 24 MiB
        instead), plus about ``3 kB x chunk_pixels`` per worker thread; the
        result does not depend on it (the global attention is accumulated
        exactly over tiles). A 4096 x 3072 pair peaked at 1.2-1.4 GiB, an
        8192 x 6144 pair at 2.7 GiB (whole process, BENCHMARKS.md
        ``refusion-large``).

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
    options: ClassVar[tuple[Option, ...]] = (
        Option("task", str, "ivif", "Which shipped weights, and the source order the network expects",
               choices=TASKS),
        Option("weights", Path, None, "A shipped variant name ('fusekit info refusion' lists them) or a weights "
               "file (.safetensors, or the authors' .pth); None: the task's default shipped weights", flag=True),
        Option("stretch", bool, True, "Min-max stretch each network output to [0, 1] (the authors' convention)",
               flag=True),
        Option("device", str, "cpu", "cpu, cuda, cuda:N or auto (CUDA when available)", flag=True),
        Option("chunk_pixels", int, DEFAULT_CHUNK_PIXELS, "Pixels per tile of the inference engine (sets "
               "memory, not results)"),
    )

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

    def _weights_variant(self) -> str | None:
        """The shipped variant named by ``weights`` (``None``: the default), or ``""`` for a file."""
        from .weights import is_variant_name

        if self.weights is None:
            return None
        if self.weights.exists() or not is_variant_name(str(self.weights)):
            return ""
        return str(self.weights)

    def load_weights(self, network: "torch.nn.Module") -> None:
        """Load ``weights`` (a file, or the name of a shipped variant such as ``fixed`` or
        ``learned``), else the default shipped weights of ``task`` (sha256-checked)."""
        from .checkpoint import load_weights_file

        variant = self._weights_variant()
        if variant == "":
            _check_task_of(self.weights, self.task)
            load_weights_file(network, self.weights)
            return
        from .weights import entry_for

        load_weights_file(network, entry_for(self.task, variant=variant).path)

    def shipped_entry(self):
        """The registry entry of the shipped weights in use (:class:`~fusekit_refusion.weights.WeightsEntry`),
        or ``None`` when ``weights`` is a file."""
        from .weights import entry_for

        variant = self._weights_variant()
        return None if variant == "" else entry_for(self.task, variant=variant, verify=False)

    @classmethod
    def weight_variants(cls) -> list[dict[str, str]]:
        """One row per shipped weights file: task, variant, default, loss proposer, training summary."""
        from .weights import TASKS as _tasks, variants_for

        rows = []
        for task in _tasks:
            for i, entry in enumerate(variants_for(task)):
                card = entry.card
                cfg = card.get("config", {})
                rows.append({"task": task, "variant": entry.variant, "default": "yes" if i == 0 else "",
                             "loss_proposer": str(card.get("loss_proposer", "?")),
                             "trained": f"{card.get('steps', '?')} steps, {cfg.get('recipe', 'fusekit')} recipe, "
                                        f"seed {card.get('seed', '?')}",
                             "proposer": "yes" if entry.proposer else "",
                             "file": entry.path.name})
        return rows

    def proposer_network(self) -> "torch.nn.Module":
        """The meta-learned loss proposer P shipped with the weights in use, on CPU, in eval mode.

        Raises
        ------
        WeightsError
            The weights in use have no shipped proposer (a fixed-loss
            variant, or a file passed with ``weights``).
        """
        from fusekit.errors import WeightsError

        from .weights import sha256_of, variants_for

        entry = self.shipped_entry()
        if entry is None or entry.proposer is None:
            learned = [e.variant for e in variants_for(self.task) if e.proposer is not None]
            what = "a weights file" if entry is None else f"the {entry.variant!r} weights of {self.task}"
            hint = (f"use --weights {learned[0]}" if learned else
                    f"no variant of {self.task} ships one; train one with 'fusekit train --loss-proposer refusion'")
            raise WeightsError(f"{what} came without a learned loss proposer to explain; {hint}")
        if entry.proposer_sha256 and sha256_of(entry.proposer) != entry.proposer_sha256:
            raise WeightsError(f"{entry.proposer}: sha256 does not match the registry; reinstall fusekit")
        return load_proposer(entry.proposer)

    def fuse_tensor(self, sources: "torch.Tensor") -> "torch.Tensor":
        """``N x S x H x W`` (``S >= 2``) -> ``N x 1 x H x W``, pairwise for ``S > 2``."""
        import torch

        from .engine import RECEPTIVE_RADIUS, infer

        if sources.numel() and sources.is_floating_point():
            lo, hi = (float(v) for v in torch.aminmax(sources))
            if not (lo >= -RANGE_TOLERANCE and hi <= 1 + RANGE_TOLERANCE):  # NaN fails too
                hint = " (0-255 values? divide by 255)" if hi > 1.5 else ""
                raise InputError(f"refusion: sources must lie in [0, 1], got values in [{lo:g}, {hi:g}]{hint}")
        net = self.network
        # the authors' checkpoints run exactly as published (zero padding); fusekit's own weights get the
        # mirrored border that keeps weights trained on zero-padded patches from striping the edges
        border = 0 if self.weights is not None and self.weights.suffix.lower() == ".pth" else None
        fused = sources[:, :1]
        for i in range(1, sources.shape[1]):
            # two sources: the tensor itself (a copy of a large pair costs its size again in memory)
            pair = sources if sources.shape[1] == 2 else torch.cat([fused, sources[:, i:i + 1]], dim=1)
            fused = infer(net, pair, chunk_pixels=self.chunk_pixels or DEFAULT_CHUNK_PIXELS,
                          border=RECEPTIVE_RADIUS if border is None else border,
                          progress=(i - 1, sources.shape[1] - 1))  # one count over all pairs
            if self.stretch:
                fused = _stretch(fused)
        return fused


def load_proposer(path: str | os.PathLike) -> "torch.nn.Module":
    """A loss proposal network from a ``.safetensors`` file, in eval mode on CPU.

    A file whose metadata says ``symmetric = 1`` was trained order-equivariant
    (``fusekit train --symmetric-proposer``) and is wrapped the same way; one
    that says ``learn_weights = intensity`` set only the intensity weights
    (``--learn-weights intensity``) and gets the max-gradient rule's gradient
    weights, the loss its fuser was trained with.

    Raises
    ------
    WeightsError
        Unreadable file or tensors that do not fit the network.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    from fusekit.errors import WeightsError

    from fusekit.training.symmetric import SYMMETRIC_MEANS

    from .meta_networks import LossProposalNet

    net = LossProposalNet()
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        net.load_state_dict(load_file(str(path)))
        temperature = float(meta.get("temperature", "1"))  # trained with --proposer-temperature
        if not temperature > 0:
            raise ValueError(f"temperature {temperature}")
        mean = meta.get("symmetric_mean", "arithmetic")  # trained with --symmetric-mean
        if mean not in SYMMETRIC_MEANS:
            raise ValueError(f"symmetric_mean {mean!r}")
    except Exception as exc:
        raise WeightsError(f"{path}: cannot load the loss proposer ({type(exc).__name__}); "
                           f"reinstall fusekit or pass a proposer written by fusekit") from exc
    if meta.get("symmetric") == "1":
        from fusekit.training.symmetric import OrderEquivariant

        net = OrderEquivariant(net, mean)
    if temperature != 1.0:
        from fusekit.training.sharpen import Sharpened

        net = Sharpened(net, temperature)
    if meta.get("learn_weights") == "intensity":  # trained with --learn-weights intensity
        from fusekit.training.partial import LearnedIntensity

        net = LearnedIntensity(net)
    return net.eval()


def _check_task_of(path: Path, task: str) -> None:
    """Refuse fusekit weights whose metadata names another task (authors' ``.pth`` files have none)."""
    if path.suffix != ".safetensors" or not path.is_file():
        return
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception:
        return  # the loader names what is wrong with the file
    if meta.get("task") not in (None, task):
        from fusekit.errors import WeightsError

        raise WeightsError(f"{path}: weights are for task {meta['task']!r}, not {task!r}; pass --task "
                           f"{meta['task']} or weights trained for {task}")


def _stretch(x: "torch.Tensor") -> "torch.Tensor":
    """Min-max stretch each image of ``N x 1 x H x W`` to [0, 1] (constant images unchanged)."""
    flat = x.flatten(1)
    lo = flat.amin(1).view(-1, 1, 1, 1)
    hi = flat.amax(1).view(-1, 1, 1, 1)
    span = hi - lo
    safe = span.clamp_min(1e-12)
    return ((x - lo) / safe).where(span > 0, x)
