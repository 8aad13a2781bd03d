"""Where fused images come from: folders of another tool's output, or methods run into a cache."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..errors import InputError
from ..datasets import images_by_stem
from .dataset import Dataset

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import PluginHost


@dataclass(frozen=True)
class FusedFolder:
    """Fused images read from a folder (files named like the sources)."""

    label: str
    folder: Path


@dataclass(frozen=True)
class FusedMethod:
    """Fused images produced by a registered method and cached in ``folder``."""

    label: str
    fuser: type
    options: tuple[tuple[str, Any], ...]
    folder: Path


def default_cache_dir() -> Path:
    """Where produced fused images are cached when no folder is given.

    ``$FUSEKIT_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/fusekit``, else
    ``~/.cache/fusekit``. Never inside the dataset, which may be read-only.
    """
    env = os.environ.get("FUSEKIT_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "fusekit"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_") or "x"


def _dataset_key(root: Path, modalities: Sequence[str] = ()) -> str:
    """Cache folder name of a dataset read with ``modalities`` in that order.

    Another choice or order of source sub-folders gets its own folder, so
    alternating ``--sources`` orders do not fuse over each other's images.
    """
    import hashlib  # here: ~7 ms to import, and only --method runs have a cache folder

    resolved = root.resolve()
    digest = hashlib.sha1("\0".join([str(resolved), *modalities]).encode()).hexdigest()[:8]
    return _slug("-".join(resolved.parts[-3:])) + "-" + digest


def _method_specs(methods: str | Sequence[str] | Mapping[str, Mapping[str, Any]] | None,
                  dataset: Dataset, cache_root: Path, host: "PluginHost",
                  task: str | None) -> list[FusedMethod]:
    if methods is None:
        return []
    if isinstance(methods, str):
        methods = [methods]
    pairs = (list(methods.items()) if isinstance(methods, Mapping)
             else [(m, {}) for m in methods])
    specs = []
    for name, options in pairs:
        cls = host.fusers.get(name)
        opts = dict(options)
        task_for = task or dataset.task
        if task_for and "task" not in opts and "task" in cls.option_names():
            opts["task"] = task_for
        cls.create(**opts)  # validate options now, once, instead of per image
        items = tuple(sorted(opts.items()))
        # the label shows the options the caller chose; the cache folder names them all
        shown = tuple(sorted(dict(options).items()))
        label = name + ("[" + ",".join(f"{k}={v}" for k, v in shown) + "]" if shown else "")
        key = name + "".join(f"-{k}={v}" for k, v in items)
        folder = cache_root / "fused" / _dataset_key(dataset.root, dataset.modalities) / _slug(key)
        specs.append(FusedMethod(label, cls, items, folder))
    return specs


def _folder_specs(fused: str | os.PathLike | Sequence[str | os.PathLike] | Mapping[str, Any] | None
                  ) -> list[FusedFolder]:
    if fused is None:
        return []
    if isinstance(fused, (str, os.PathLike)):
        fused = [fused]
    pairs = (list(fused.items()) if isinstance(fused, Mapping)
             else [(Path(f).resolve().name or str(f), f) for f in fused])
    specs, seen = [], set()
    for label, folder in pairs:
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"{folder}: fused-image folder not found; check the --fused path")
        base, k = str(label), 2
        while label in seen:
            label, k = f"{base}-{k}", k + 1
        seen.add(label)
        specs.append(FusedFolder(str(label), folder))
    return specs



def _find_fused(folder: Path, cache: dict[Path, dict[str, list[Path]]], name: str) -> tuple[Path | None, str]:
    listing = cache.setdefault(folder, images_by_stem(folder))
    found = listing.get(name, [])
    if not found:
        return None, f"no fused image named {name!r} in {folder}"
    if len(found) > 1:
        return None, f"several fused files named {name!r} in {folder}; keep one"
    return found[0], ""
