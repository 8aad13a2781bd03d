"""The meta-learning trainer, generic over any TorchFuser, LossProposer and Reconstructor.

Modules (import them directly; this package imports nothing heavy so that
loading the built-in plugin does not import torch):

* :mod:`fusekit.training.data` -- source sets from data folders, random patches, batches as tensors.
* :mod:`fusekit.training.losses` -- Sobel gradient, the table of ``L_fuse``'s terms, ``L_fuse``, ``L_rec``.
* :mod:`fusekit.training.proposals` -- what a loss proposer proposes: weights per named term.
* :mod:`fusekit.training.config` -- ``TrainConfig``: the settings, their defaults and help.
* :mod:`fusekit.training.schedule` -- which step when, learning rates, loss ramp.
* :mod:`fusekit.training.meta` / :mod:`~fusekit.training.fusion` -- the two steps (``MetaStep``, ``FusionStep``).
* :mod:`fusekit.training.checkpoints` / :mod:`~fusekit.training.bookkeeping` -- run state, log, Ctrl-C.
* :mod:`fusekit.training.trainer` -- the ``Trainer``: builds the parts, runs the loop (re-exports the names above).
* :mod:`fusekit.training.fixed` -- the hand-made ``fixed`` loss proposer.

The scheme follows ReFusion (H. Bai et al., "ReFusion: Learning Image Fusion
from Reconstruction with Learnable Loss via Meta-Learning", IJCV 2024,
arXiv:2312.07943); see ``shared/REFUSION.md`` for the reconstruction of its
training loop.
"""
