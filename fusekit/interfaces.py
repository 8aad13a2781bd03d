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
A minimal plugin fuser, with one option declared as data::

    import numpy as np
    from fusekit import Fuser, Option

    class Minimum(Fuser):
        name = "min"
        tasks = ("ivif",)
        max_sources = None  # any number of sources
        options = (Option("offset", float, 0.0, "added to the minimum"),)

        def __init__(self, *, offset: float = 0.0):
            super().__init__()
            self.offset = offset

        def fuse(self, sources):
            return np.clip(np.minimum.reduce(sources) + self.offset, 0, 1)
"""

from __future__ import annotations

import abc
import ast
import inspect
import numbers
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Sequence

import numpy as np

from .errors import FusekitError, ParameterError, PluginError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

#: The fusion tasks fusekit knows. ``ivif`` infrared + visible, ``mif`` medical,
#: ``mfif`` multi-focus, ``meif`` multi-exposure.
TASKS: tuple[str, ...] = ("ivif", "mif", "mfif", "meif")


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
_TYPE_NAMES = {bool: "bool", int: "int", float: "float", str: "text", Path: "path"}


@dataclass(frozen=True)
class Option:
    """One keyword option of a method, declared as data.

    The core builds everything users see of an option from this record:
    ``fusekit fuse -p NAME=VALUE`` parsing and checking, a ``--NAME`` flag
    (when ``flag`` is set), and the ``fusekit info METHOD`` listing. The
    fuser's ``__init__`` still takes the option as a keyword argument with
    the same default, and checks its range.

    Attributes
    ----------
    name : str
        The keyword of ``__init__`` (``"levels"``).
    type : {bool, int, float, str, pathlib.Path} or None
        What command-line text becomes. ``None`` (options a fuser does not
        declare): a Python literal when the text is one, else the text.
    default : object
        The ``__init__`` default.
    help : str
        One line for ``fusekit info`` and ``--help``.
    choices : tuple, optional
        The only values allowed.
    flag : bool
        Also offer the option as ``fusekit fuse --NAME VALUE`` (``--NAME /
        --no-NAME`` for a bool); ``-p NAME=VALUE`` works either way.

    Examples
    --------
    >>> Option("levels", int, 4, "pyramid levels").parse("6")
    6
    >>> Option("stretch", bool, True, "stretch the output").parse("off")
    False
    """

    name: str
    type: type | None = None
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] | None = None
    flag: bool = False

    @property
    def type_name(self) -> str:
        """Short name of the value type for listings (``"int"``, ``"path"``; ``"value"`` if undeclared)."""
        return _TYPE_NAMES.get(self.type, getattr(self.type, "__name__", "value")) if self.type else "value"

    def parse(self, text: str) -> Any:
        """Turn command-line ``text`` into a value of :attr:`type`.

        ``none`` gives ``None`` for an option whose default is ``None``
        (``-p levels=none``: back to the method's automatic choice).

        Raises
        ------
        ParameterError
            Text that is not a value of the type, or not one of the choices.
        """
        raw = text.strip()
        if self.type is not None and self.default is None and raw.lower() == "none":
            return None
        if self.type is None:
            lowered = raw.lower()
            if lowered in _TRUE[:3] or lowered in _FALSE[:3]:
                return lowered in _TRUE
            try:
                return ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                return text
        if self.type is bool:
            if raw.lower() not in _TRUE + _FALSE:
                raise ParameterError(f"option {self.name} takes true or false, got {text!r}")
            value: Any = raw.lower() in _TRUE
        elif self.type in (int, float):
            try:
                value = self.type(raw)
            except ValueError:
                raise ParameterError(f"option {self.name} takes a number ({self.type_name}), got {text!r}") from None
        else:
            value = self.type(raw) if self.type is not str else raw
        return self.check(value)

    def check(self, value: Any) -> Any:
        """Return ``value`` if it has the declared type and is one of the choices.

        ``None`` passes when it is the default; any integer
        (:class:`numbers.Integral`, numpy's too) passes as an ``int``, any
        real number as a ``float``; a ``str`` or path-like passes as a path.
        A wrong type is reported with the option's help (its range).

        Raises
        ------
        ParameterError
            With the option's name, what it takes and what came.
        """
        if self.type is not None and not (value is None and self.default is None):
            ok = {bool: lambda v: isinstance(v, bool),
                  int: lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool),
                  float: lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool),
                  Path: lambda v: isinstance(v, (str, os.PathLike))}.get(self.type, lambda v: isinstance(v, self.type))
            if not ok(value):
                about = f" ({self.help})" if self.help else ""
                raise ParameterError(f"option {self.name} takes a {self.type_name} value, got {value!r}{about}")
        if self.choices is not None and value not in self.choices:
            raise ParameterError(f"option {self.name} must be one of {', '.join(map(str, self.choices))}, "
                                 f"got {value!r}")
        return value

    def describe(self) -> str:
        """One line: ``name (type, default X; one of a, b): help``."""
        detail = f"{self.type_name}, default {self.default!r}"
        if self.choices is not None:
            detail += f"; one of {', '.join(map(str, self.choices))}"
        return f"{self.name} ({detail})" + (f": {self.help}" if self.help else "")


#: ``callback(done, total)``: how far the fuse in progress is (``total`` ``None`` when unknown).
ProgressCallback = Callable[[int, "int | None"], None]

_progress_lock = threading.Lock()
_progress_listener: ProgressCallback | None = None


def report_progress(done: int, total: int | None = None) -> None:
    """Tell whoever watches the fuse in progress that ``done`` of ``total`` steps are finished.

    For long-running fusers (a tiled network engine, an iterative method):
    call it after each tile or pass, from any thread. It costs next to
    nothing when nobody listens (the usual case), so calling it a few
    thousand times per image is fine. ``fusekit fuse`` shows the count next
    to its elapsed-time indicator; :func:`fusekit.api.fuse_images` and
    :func:`fusekit.api.fuse_files` pass it to their ``progress`` callback.

    Parameters
    ----------
    done : int
        Steps finished so far (tiles, passes), counted from the start of
        the current ``Fuser.fuse`` call.
    total : int, optional
        Steps the fuse will take, when known.

    Examples
    --------
    >>> seen = []
    >>> with reporting_progress(lambda done, total: seen.append((done, total))):
    ...     report_progress(1, 4)
    >>> report_progress(2, 4)  # nobody listens: nothing happens
    >>> seen
    [(1, 4)]
    """
    listener = _progress_listener
    if listener is not None:
        try:
            listener(done, total)
        except Exception:  # noqa: BLE001 - a broken progress display must never fail a fuse
            pass


@contextmanager
def reporting_progress(callback: ProgressCallback | None) -> Iterator[None]:
    """Send :func:`report_progress` calls to ``callback`` while the block runs (``None``: to nobody).

    The listener is process-wide, so reports from a fuser's worker threads
    reach it; the previous listener is restored on exit (blocks nest).
    """
    global _progress_listener
    with _progress_lock:
        previous, _progress_listener = _progress_listener, callback
    try:
        yield
    finally:
        with _progress_lock:
            _progress_listener = previous


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
    options : tuple of Option
        The keyword options of ``__init__`` as data (:class:`Option`): one
        per keyword, same defaults. ``fusekit fuse -p``, its flags and
        ``fusekit info`` are built from them. A fuser that declares none gets
        options read from ``__init__``'s signature (untyped, no help).

    Notes
    -----
    A fuser that takes long on one image (a tiled network, an iterative
    method) may call :func:`report_progress` after each tile or pass;
    ``fusekit fuse`` then shows the count next to its elapsed time.
    """

    name: ClassVar[str] = ""
    tasks: ClassVar[tuple[str, ...]] = TASKS
    min_sources: ClassVar[int] = 2
    max_sources: ClassVar[int | None] = 2
    needs_color: ClassVar[bool] = False
    summary: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()

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
    def declared_options(cls) -> tuple[Option, ...]:
        """The method's options: :attr:`options`, or read from ``__init__`` when none are declared.

        Raises
        ------
        PluginError
            The declaration and ``__init__`` disagree (names or defaults).
        """
        params = {p.name: p for p in inspect.signature(cls.__init__).parameters.values()
                  if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"}
        if not cls.options:
            return tuple(Option(name, None, None if p.default is p.empty else p.default)
                         for name, p in params.items())
        declared = [o.name for o in cls.options]
        if sorted(declared) != sorted(params):
            raise PluginError(f"method {cls.name!r} declares options {', '.join(declared)} but __init__ takes "
                              f"{', '.join(params) or 'none'}; declare each keyword of __init__ once")
        for opt in cls.options:
            default = params[opt.name].default
            if default is not inspect.Parameter.empty and default != opt.default:
                raise PluginError(f"method {cls.name!r}: option {opt.name} declares default {opt.default!r} "
                                  f"but __init__ has {default!r}; make them agree")
        return tuple(cls.options)

    @classmethod
    def option_names(cls) -> list[str]:
        """Names of the keyword options ``__init__`` accepts."""
        return [o.name for o in cls.declared_options()]

    @classmethod
    def options_text(cls) -> str:
        """The options as ``name=default`` for one-line messages (``"(none)"`` if none)."""
        return ", ".join(f"{o.name}={o.default!r}" for o in cls.declared_options()) or "(none)"

    @classmethod
    def create(cls, **options: Any) -> "Fuser":
        """Instantiate with options, rejecting unknown ones and values of the wrong declared type."""
        declared = {o.name: o for o in cls.declared_options()}
        unknown = sorted(set(options) - set(declared))
        if unknown:
            raise ParameterError(
                f"method {cls.name!r} has no option {', '.join(unknown)}; its options are: "
                f"{cls.options_text()} ('fusekit info {cls.name}' describes them)"
            )
        for key, value in options.items():
            try:
                declared[key].check(value)
            except ParameterError as exc:
                raise ParameterError(f"method {cls.name!r}: {exc}") from None
        try:
            return cls(**options)
        except ValueError as exc:  # a method's own check of a value (a range, say): name the method
            if isinstance(exc, FusekitError) or str(exc).startswith(f"method {cls.name!r}"):
                raise
            raise ParameterError(f"method {cls.name!r}: {exc}") from exc

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
        """The resolved :class:`torch.device` (:func:`fusekit.devices.resolve_device`)."""
        from .devices import resolve_device

        return resolve_device(self.device)

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
    """Proposes pixel-wise, per-source weights for the terms of the fusion loss.

    :meth:`build_network` returns a module whose ``forward(sources)`` takes
    ``N x S x H x W`` sources in [0, 1] (``S`` sources in the task's slot
    order) and returns a *proposal*: a mapping from a term name to that
    term's ``N x S x H x W`` weights, e.g. ``{"intensity": w_int,
    "gradient": w_grad}``. The fusion loss is the sum of the proposed terms
    (:func:`fusekit.training.losses.fusion_loss`); a term left out is not in
    the loss. Weights usually sum to 1 over ``S`` at every pixel.

    The registered terms (:data:`fusekit.training.losses.LOSS_TERMS`) are
    ``"intensity"``, ``sum_s mean((w_s * (I_s - F))^2)``, and
    ``"gradient"``, the same on Sobel gradient magnitudes, scaled by
    ``lambda_grad``. A plugin adds a term with
    :func:`fusekit.training.losses.register_loss_term` (a function
    ``compare(sources, fused, weights) -> scalar``, logged as
    ``fuse_NAME``) before training, then proposes weights under its name.

    A pair ``(w_int, w_grad)`` is read as ``{"intensity": w_int,
    "gradient": w_grad}``, so proposers written for the two-term loss keep
    working; fusekit's own networks still answer with that pair.

    Attributes
    ----------
    name : str
        Registry key (``fusekit train --loss-proposer NAME``).
    learnable : bool
        ``False`` for a fixed, hand-made loss: the trainer then skips the
        meta-learning phase.

    Examples
    --------
    A proposer of the intensity term only, equal weights::

        import torch
        from fusekit import LossProposer

        class EvenIntensity(torch.nn.Module):
            def forward(self, sources):
                return {"intensity": torch.full_like(sources, 1 / sources.shape[1])}

        class Even(LossProposer):
            name = "even"
            learnable = False

            def build_network(self):
                return EvenIntensity()
    """

    name: ClassVar[str] = ""
    learnable: ClassVar[bool] = True
    summary: ClassVar[str] = ""

    @abc.abstractmethod
    def build_network(self) -> "torch.nn.Module":
        """Return the module ``N x S x H x W -> {term name: N x S x H x W}`` (or ``(w_int, w_grad)``)."""


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
