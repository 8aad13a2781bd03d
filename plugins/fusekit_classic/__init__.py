"""fusekit_classic: traditional image-fusion baselines, shipped as a fusekit plugin.

Each method is a :class:`fusekit.interfaces.Fuser` subclass implemented from
its paper (cited in the class docstring), with the paper's parameters as
keyword options:

===================== ============================ ========== ==========================
name                  class                        tasks      inputs
===================== ============================ ========== ==========================
``average``           :class:`Average`             all        2+
``max``               :class:`Maximum`             ivif, mif  2+
``pca``               :class:`PCA`                 all        2+
``laplacian-pyramid`` :class:`LaplacianPyramid`    all        2+
``dwt``               :class:`DWT`                 all        2+
``guided-filter``     :class:`GuidedFilter`        all        2+
``exposure``          :class:`Exposure`            meif       2+, RGB (``needs_color``)
``focus``             :class:`Focus`               mfif       2+, RGB (``needs_color``)
===================== ============================ ========== ==========================

Use them through :func:`fusekit.fuse` (``method="guided-filter"``) or the
``fusekit fuse --method NAME`` command; the classes also work directly on
lists of float32 arrays in [0, 1].
"""

from .exposure import Exposure
from .focus import Focus
from .guided import GuidedFilter
from .pyramid import LaplacianPyramid
from .simple import PCA, Average, Maximum
from .wavelet import DWT

#: Every fuser class this plugin registers, in display order.
METHODS = (Average, Maximum, PCA, LaplacianPyramid, DWT, GuidedFilter, Exposure, Focus)

__all__ = ["METHODS", "Average", "Maximum", "PCA", "LaplacianPyramid", "DWT", "GuidedFilter",
           "Exposure", "Focus"]
