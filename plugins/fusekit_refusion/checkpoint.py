"""Load ReFusion weights files: the authors' ``.pth`` checkpoints and our safetensors.

The authors publish plain state dicts (``ReFusion_IVIF.pth``, ``_MIF``,
``_MFIF``, ``_MEIF``) of their network, whose module names match
:class:`~fusekit_refusion.network.ReFusionNet` except for two details:

* every convolution is a wrapper holding an ``nn.Conv2d`` as ``.conv`` and
  exposing its weight again, so each convolution weight appears twice, as
  ``NAME.weight`` and ``NAME.conv.weight`` (same values): 140 entries for 86
  distinct tensors;
* each layer norm keeps its parameters one level down, ``normX.body.weight``
  and ``normX.body.bias``.

:func:`canonical_state_dict` maps either layout (theirs or ours) onto our
names, checking duplicates agree; :func:`load_into` checks that keys and
shapes match the network exactly and raises a one-line
:class:`~fusekit.errors.WeightsError` otherwise. ``.pth`` files are read with
``torch.load(weights_only=True)``: no arbitrary object is ever unpickled.

Examples
--------
>>> from fusekit_refusion.network import ReFusionNet
>>> net = ReFusionNet()
>>> theirs = to_authors_state_dict(net)
>>> len(theirs)
140
>>> load_into(ReFusionNet(), theirs, source="example")
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

import torch

from fusekit.errors import WeightsError

__all__ = ["read_weights_file", "canonical_state_dict", "load_into", "load_weights_file",
           "to_authors_state_dict", "FIX_HINT"]

#: What to tell the user when a file cannot be used.
FIX_HINT = ("pass --weights with one of the authors' ReFusion_<TASK>.pth files or a "
            ".safetensors file written by 'fusekit train'")

_MAX_LISTED = 4


def _listing(keys) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f" (+{len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else "")


def _reason(exc: Exception) -> str:
    """A short, single-line reason for a failed load."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    if "Weights only load failed" in text:
        return "it holds Python objects other than tensors, which are never unpickled for safety"
    first = text.splitlines()[0] if text else ""
    if len(first) < 8:  # e.g. a bare opcode number from the unpickler
        return f"{type(exc).__name__}: corrupt or not a weights file"
    return first[:120].rstrip(" .") + ("..." if len(first) > 120 else "")


def read_weights_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a weights file into a flat ``{name: tensor}`` dict (CPU tensors).

    The format is recognised from the content, not the extension:
    safetensors (8-byte header length + JSON) or a ``torch.save`` file
    (zip or legacy pickle), the latter read with ``weights_only=True``.

    Raises
    ------
    WeightsError
        The file is missing, unreadable, corrupt, or not a flat dict of tensors.
    """
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: weights file not found; {FIX_HINT}")
    if not path.is_file():
        raise WeightsError(f"{path}: is not a file; {FIX_HINT}")
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read ({exc.strerror}); check permissions") from exc
    is_safetensors = len(head) == 9 and head[8:9] == b"{"
    is_torch_save = head[:4] == b"PK\x03\x04" or head[:1] == b"\x80"  # zip archive or pickle
    if not (is_safetensors or is_torch_save):
        raise WeightsError(f"{path}: not a weights file (neither safetensors nor a torch.save checkpoint); "
                           f"{FIX_HINT}")
    try:
        if is_safetensors:
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt zip, truncated pickle, disallowed globals, bad header...
        kind = "safetensors" if is_safetensors else "PyTorch checkpoint"
        raise WeightsError(f"{path}: not a readable {kind} ({_reason(exc)}); {FIX_HINT}") from exc
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]  # a training checkpoint wrapping the weights
    if not isinstance(state, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise WeightsError(f"{path}: holds a {type(state).__name__}, not a state dict of tensors; {FIX_HINT}")
    if not state:
        raise WeightsError(f"{path}: holds no tensors; {FIX_HINT}")
    return dict(state)


def canonical_state_dict(state: Mapping[str, torch.Tensor], *, source: str = "weights") -> dict[str, torch.Tensor]:
    """Map the authors' key layout (or ours) onto :class:`ReFusionNet` names.

    ``NAME.conv.weight`` duplicates are dropped after checking that they
    equal ``NAME.weight`` (or renamed when ``NAME.weight`` is absent);
    ``.body.`` of the layer norms is removed; a ``module.`` prefix
    (``DataParallel``) is stripped.

    Raises
    ------
    WeightsError
        A duplicated convolution holds two different tensors.
    """
    out: dict[str, torch.Tensor] = {}
    conv_copies: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = key[len("module."):] if key.startswith("module.") else key
        name = name.replace(".body.", ".")
        if name.endswith(".conv.weight"):
            conv_copies[name[: -len(".conv.weight")] + ".weight"] = value
        else:
            out[name] = value
    for name, value in conv_copies.items():
        if name not in out:
            out[name] = value
        elif out[name].shape != value.shape or not torch.equal(out[name], value):
            raise WeightsError(f"{source}: {name} and its copy {name[:-7]}.conv.weight differ; "
                               f"the file is inconsistent, re-download it")
    return out


def load_into(net: torch.nn.Module, state: Mapping[str, torch.Tensor], *, source: str = "weights") -> None:
    """Copy ``state`` (either key layout) into ``net``, exactly: same keys, same shapes.

    Raises
    ------
    WeightsError
        Keys are missing or unexpected, or shapes differ; the message lists
        them and names ``source``.
    """
    mapped = canonical_state_dict(state, source=source)
    expected = net.state_dict()
    missing = set(expected) - set(mapped)
    unexpected = set(mapped) - set(expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys: {_listing(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {_listing(unexpected)}")
        raise WeightsError(f"{source}: not a ReFusion fusion-network checkpoint ({'; '.join(parts)}); {FIX_HINT}")
    wrong = [f"{k} {tuple(mapped[k].shape)} (expected {tuple(v.shape)})"
             for k, v in expected.items() if mapped[k].shape != v.shape]
    if wrong:
        raise WeightsError(f"{source}: {len(wrong)} tensors have the wrong shape: {_listing(wrong)}; {FIX_HINT}")
    bad = [k for k, v in mapped.items() if not torch.is_floating_point(v) or not torch.isfinite(v).all()]
    if bad:
        raise WeightsError(f"{source}: non-float or non-finite values in {_listing(bad)}; the file is damaged")
    with torch.no_grad():
        net.load_state_dict({k: v.to(dtype=expected[k].dtype) for k, v in mapped.items()}, strict=True)


def load_weights_file(net: torch.nn.Module, path: str | os.PathLike) -> None:
    """Read ``path`` (:func:`read_weights_file`) and load it into ``net`` (:func:`load_into`)."""
    load_into(net, read_weights_file(path), source=str(path))


def to_authors_state_dict(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Export ``net``'s weights in the authors' layout (140 entries for the published net).

    Every convolution weight is stored as ``NAME.weight`` and
    ``NAME.conv.weight`` and layer-norm parameters under ``.body.``, as in
    the published ``.pth`` files. Useful to test the loader and to hand our
    weights to the authors' script.
    """
    out: dict[str, torch.Tensor] = {}
    modules = dict(net.named_modules())
    for key, value in net.state_dict().items():
        owner, _, leaf = key.rpartition(".")
        module = modules[owner]
        if isinstance(module, torch.nn.Conv2d):
            out[key] = value.clone()
            out[f"{owner}.conv.{leaf}"] = value.clone()
        elif owner.rsplit(".", 1)[-1].startswith("norm"):
            out[f"{owner}.body.{leaf}"] = value.clone()
        else:
            out[key] = value.clone()
    return out
