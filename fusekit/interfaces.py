"""The three interfaces every fusion method is built from.

* :class:`Fuser` turns a list of registered source images into one fused
  image (numpy in, numpy out). Traditional methods subclass it directly.
* :class:`TorchFuser` is a :class:`Fuser` backed by a ``torch.nn.Module``
  that maps ``N x S x H x W`` sources to an ``N x 1 x H x W`` fused image.
* :class:`LossProposer` and :class:`Reconstructor` are the extra networks the
  meta-learning trainer (:mod:`fusekit.training`) combines with any
  TorchFuser.

This module must not import torch at import time: ``import fusekit`` and
``fusekit --help`` stay fast on machines where torch is slow to load.

Examples
--------
A minimal plugin fuser::

    import numpy as np
    from fusekit import Fuser

    class Minimum(Fuser):
        name = "min"
        tasks = ("ivif",)
        max_sources = None  # any number of sources

        def fuse(self, sources):
            return np.minimum.reduce(sources)
"""

from __future__ import annotations

import abc
import inspect
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

import numpy as np

from .errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

#: The fusion tasks fusekit knows. ``ivif`` infrared + visible, ``mif`` medical,
#: ``mfif`` multi-focus, ``meif`` multi-exposure.
TASKS: tuple[str, ...] = ("ivif", "mif", "mfif", "meif")


class Fuser(abc.ABC):
    """Fuse registered single-channel images into one.

    Subclasses set the class attributes below and implement :meth:`fuse`.
    Keyword options of ``__init__`` are the method's parameters; they must be
    keyword-only with the paper's defaults and raise
    :class:`~fusekit.errors.ParameterError` when out of range.

    Attributes
    ----------
    name : str
        Registry key, lowercase with hyphens (``"laplacian-pyramid"``).
    tasks : tuple of str
        Which of :data:`TASKS` the method suits.
    min_sources, max_sources : int or None
        How many sources :meth:`fuse` accepts; ``max_sources = None`` means any
        number (N-input methods such as exposure fusion of a bracket).
    needs_color : bool
        ``False`` (default): :meth:`fuse` receives luminance images ``H x W``
        and returns ``H x W``; the core colour pipeline handles chroma.
        ``True``: :meth:`fuse` receives RGB images ``H x W x 3`` (grey sources
        replicated to three channels) and returns ``H x W x 3``.
    summary : str
        One line shown by ``fusekit methods``.
    """

    name: ClassVar[str] = ""
    tasks: ClassVar[tuple[str, ...]] = TASKS
    min_sources: ClassVar[int] = 2
    max_sources: ClassVar[int | None] = 2
    needs_color: ClassVar[bool] = False
    summary: ClassVar[str] = ""

    def __init__(self) -> None:
        pass

    @abc.abstractmethod
    def fuse(self, sources: Sequence[np.ndarray]) -> np.ndarray:
        """Fuse the sources.

        Parameters
        ----------
        sources : sequence of ndarray
            ``S`` images of one shape, float32 in [0, 1]: ``H x W`` each, or
            ``H x W x 3`` RGB when :attr:`needs_color` is set. Must not be
            modified.

        Returns
        -------
        ndarray
            float32 in [0, 1], ``H x W`` (``H x W x 3`` when
            :attr:`needs_color`).
        """

    def prepare(self) -> None:
        """Load whatever the method needs (weights) now, so errors surface early.

        Called by batch commands before the first image; the default does
        nothing.
        """

    @classmethod
    def weight_variants(cls) -> list[dict[str, str]]:
        """Trained weights the method ships, one row per file (``fusekit info`` shows them).

        Network methods override this; each row is a flat dict of short
        strings with at least ``task`` and ``variant`` (the name users pass
        as ``--weights``). The default: none.
        """
        return []

    # -- helpers shared by every fuser ---------------------------------
    @classmethod
    def option_names(cls) -> list[str]:
        """Names of the keyword options ``__init__`` accepts."""
        params = inspect.signature(cls.__init__).parameters.values()
        return [p.name for p in params
                if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"]

    @classmethod
    def create(cls, **options: Any) -> "Fuser":
        """Instantiate with options, rejecting unknown ones with a clear message."""
        known = cls.option_names()
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ParameterError(
                f"method {cls.name!r} has no option {', '.join(unknown)}; "
                f"its options are: {', '.join(known) if known else '(none)'}"
            )
        return cls(**options)

    @classmethod
    def inputs_text(cls) -> str:
        """Human-readable source count, e.g. ``"2"`` or ``"2+"``."""
        if cls.max_sources is None:
            return f"{cls.min_sources}+"
        if cls.max_sources == cls.min_sources:
            return str(cls.min_sources)
        return f"{cls.min_sources}-{cls.max_sources}"


class TorchFuser(Fuser):
    """A :class:`Fuser` whose work is done by a ``torch.nn.Module``.

    Subclasses implement :meth:`build_network` (an untrained module mapping
    ``N x S x H x W`` sources in [0, 1] to ``N x 1 x H x W`` in [0, 1]) and may
    override :meth:`load_weights` and :meth:`fuse_tensor`. This class converts
    numpy to tensors, moves them to the chosen device and runs under
    :func:`torch.inference_mode`.

    Parameters
    ----------
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... or ``"auto"`` (CUDA when
        available, else CPU).
    """

    def __init__(self, *, device: str = "cpu") -> None:
        super().__init__()
        self.device = device
        self._network = None

    @abc.abstractmethod
    def build_network(self) -> "torch.nn.Module":
        """Return the (untrained) network: ``N x S x H x W`` -> ``N x 1 x H x W``."""

    def load_weights(self, network: "torch.nn.Module") -> None:
        """Load trained weights into ``network``; the default loads none."""

    @property
    def torch_device(self) -> "torch.device":
        """The resolved :class:`torch.device`."""
        import torch

        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(self.device)
        except RuntimeError as exc:
            raise ParameterError(f"unknown device {self.device!r}; use cpu, cuda or auto") from exc
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ParameterError("device 'cuda' asked for but CUDA is not available here; use --device cpu")
        return dev

    @property
    def network(self) -> "torch.nn.Module":
        """The network with weights loaded, on :attr:`torch_device`, in eval mode."""
        if self._network is None:
            net = self.build_network()
            self.load_weights(net)
            self._network = net.to(self.torch_device).eval()
        return self._network

    def prepare(self) -> None:
        """Build the network and load its weights (raises WeightsError early)."""
        self.network  # noqa: B018 - property access has the side effect

    def fuse_tensor(self, sources: "torch.Tensor") -> "torch.Tensor":
        """Fuse a batch: ``N x S x H x W`` -> ``N x 1 x H x W`` (inference mode)."""
        return self.network(sources)

    def fuse(self, sources: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        stacked = np.stack([np.asarray(s, dtype=np.float32) for s in sources])[None]
        with torch.inference_mode():
            x = torch.from_numpy(stacked).to(self.torch_device)
            out = self.fuse_tensor(x)
            fused = out[0, 0].float().cpu().numpy()
        return np.clip(fused, 0.0, 1.0).astype(np.float32, copy=False)


class LossProposer(abc.ABC):
    """Proposes pixel-wise weights for the intensity and gradient loss terms.

    :meth:`build_network` returns a module whose ``forward(sources)`` takes
    ``N x S x H x W`` sources in [0, 1] and returns ``(w_int, w_grad)``, two
    ``N x S x H x W`` tensors that sum to 1 over ``S`` at every pixel.

    Attributes
    ----------
    name : str
        Registry key (``fusekit train --loss-proposer NAME``).
    learnable : bool
        ``False`` for a fixed, hand-made loss: the trainer then skips the
        meta-learning phase.
    """

    name: ClassVar[str] = ""
    learnable: ClassVar[bool] = True
    summary: ClassVar[str] = ""

    @abc.abstractmethod
    def build_network(self) -> "torch.nn.Module":
        """Return the module ``N x S x H x W -> (w_int, w_grad)``."""


class Reconstructor(abc.ABC):
    """Rebuilds the sources from the fused image.

    :meth:`build_network` returns a module mapping the fused image
    ``N x 1 x H x W`` to source estimates ``N x S x H x W``, in [0, 1].

    Attributes
    ----------
    name : str
        Registry key (``fusekit train --reconstructor NAME``).
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    @abc.abstractmethod
    def build_network(self) -> "torch.nn.Module":
        """Return the module ``N x 1 x H x W -> N x S x H x W``."""
