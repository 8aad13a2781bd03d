"""ReFusion for fusekit: the fusion network, fast inference, weights loading.

Bai et al., "ReFusion: Learning Image Fusion from Reconstruction with
Learnable Loss via Meta-Learning", IJCV 2024 (arXiv:2312.07943).

Modules: :mod:`.network` (the network and its blocks, imports torch),
:mod:`.engine` (fast strip-wise inference), :mod:`.checkpoint` (authors'
``.pth`` and safetensors loading), :mod:`.weights` (shipped weights
registry), :mod:`.fuser` (the ``refusion`` fuser), :mod:`.plugin` (hooks).
Importing this package does not import torch.
"""
