"""The meta-learning trainer, generic over any TorchFuser, LossProposer and Reconstructor.

Modules (import them directly; this package imports nothing heavy so that
loading the built-in plugin does not import torch):

* :mod:`fusekit.training.data` -- pairs from data folders, random patches.
* :mod:`fusekit.training.losses` -- Sobel gradient, ``L_fuse``, ``L_rec``.
* :mod:`fusekit.training.trainer` -- the alternating meta / fusion schedule.
* :mod:`fusekit.training.fixed` -- the hand-made ``fixed`` loss proposer.

The scheme follows ReFusion (H. Bai et al., "ReFusion: Learning Image Fusion
from Reconstruction with Learnable Loss via Meta-Learning", IJCV 2024,
arXiv:2312.07943); see ``shared/REFUSION.md`` for the reconstruction of its
training loop.
"""
