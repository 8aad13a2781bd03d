"""Runs over dataset splits: which method with which options, fused into a content-keyed cache."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from ..datasets import pair_by_stem
from ..errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from ..evaluation.sources import FusedMethod
    from ..plugins import PluginHost


@dataclass(frozen=True)
class Split:
    """One split of a dataset: a folder with one sub-folder per source.

    Attributes
    ----------
    task : str
        ``"ivif"``, ``"mif"``, ``"mfif"`` or ``"meif"``; given to methods with a ``task`` option.
    dataset : str
        The name tables show, e.g. ``"tno"``.
    root : Path
        The split folder, e.g. ``<data>/ivif/tno/test``.
    sources : tuple of str
        Source sub-folders in the order methods get them (the task's slot order).
    """

    task: str
    dataset: str
    root: Path
    sources: tuple[str, ...]

    def sets(self) -> dict[str, tuple[Path, ...]]:
        """Scene name -> its source files in ``sources`` order, for the names found in every sub-folder."""
        return pair_by_stem([self.root / s for s in self.sources])[0]


@dataclass(frozen=True)
class Run:
    """A registered fusion method with its options: one column of an experiment.

    Attributes
    ----------
    method : str
        Method name, as ``fusekit list`` shows it.
    options : mapping of str to object
        Its options, as ``fusekit info METHOD`` lists them, e.g.
        ``{"weights": "ivif.safetensors"}``. A method with a ``task`` option
        gets the split's task unless one is given.
    """

    method: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def _spec(self, label: str, split: Split, folder: Path, host: "PluginHost") -> "FusedMethod":
        from ..evaluation.sources import FusedMethod

        cls = host.fusers.get(self.method)
        options = dict(self.options)
        if "task" in cls.option_names():
            options.setdefault("task", split.task)
        return FusedMethod(label, cls, tuple(sorted(options.items())), folder)


def run_folder(fused_dir: str | os.PathLike, split: Split, label: str) -> Path:
    """Where :func:`fuse` puts the images of run ``label`` on ``split``.

    Returns
    -------
    Path
        ``<fused_dir>/<task>/<dataset>/<label>``, blanks and slashes of the label as ``-``.
    """
    return Path(fused_dir) / split.task / split.dataset / re.sub(r"[\s/\\]+", "-", label.strip())


def fuse(split: Split, runs: Mapping[str, Run], fused_dir: str | os.PathLike, *,
         names: Iterable[str] | None = None, jobs: int = 1, progress: bool | None = False,
         host: "PluginHost | None" = None) -> dict[str, int]:
    """Fuse the scenes of a split with every run, reusing the images of earlier calls.

    Run ``label``'s image of scene ``s`` is ``run_folder(fused_dir, split, label) / f"{s}.png"``
    (8-bit, 16-bit if a source is), written atomically, with a record ``s.json``
    beside it holding its key: a SHA-256 of the method's class, its options and
    the bytes of any file an option names (weights), the source sub-folders in
    order, the bytes of every source, and the fusekit version (see
    :mod:`fusekit.evaluation.cache`, shared with ``fusekit eval``). An image is
    reused only while its key matches and its bytes match its record; new
    options, retrained weights, an edited source or a missing record fuse it
    again. A method's code is not in the key: after editing a plugin, delete
    its folders.

    Parameters
    ----------
    split : Split
    runs : mapping of str to Run
        Label -> run; the labels name the folders.
    fused_dir : path-like
        Root of the run folders.
    names : iterable of str, optional
        Scenes to fuse (default: all of the split), in this order; every run
        fuses one scene before the next, so a stopped call leaves a common subset.
    jobs : int
        Worker processes (:func:`fusekit.execution.execute`); 1 fuses here.
    progress : bool or None
        Progress bar on stderr (``None``: only on a terminal).
    host : PluginHost, optional
        Where the methods are looked up.

    Returns
    -------
    dict of str to int
        Label -> images fused by this call (0: every image came from the cache).

    Raises
    ------
    InputError
        A scene of ``names`` is not in the split, or some images could not be
        fused (the message names the first ones; the others are written).
    UnknownNameError, ParameterError
        Unknown method or option.
    """
    from ..evaluation import cache
    from ..evaluation.worker import load_fuser
    from ..execution import Progress, execute
    from ..io import remove_stale_temps
    from ..plugins import get_host

    host = host or get_host()
    sets = split.sets()
    chosen = list(sets) if names is None else list(names)
    if missing := [n for n in chosen if n not in sets]:
        raise InputError(f"{split.root}: no source set named {', '.join(missing[:5])}")
    specs = {label: run._spec(label, split, run_folder(fused_dir, split, label), host) for label, run in runs.items()}
    keys = {label: cache.method_key(spec.fuser, spec.options) for label, spec in specs.items()}
    todo = []
    for name in chosen:
        hashes = [cache.file_sha256(p) for p in sets[name]]
        for label, spec in specs.items():
            key = cache.entry_key(keys[label], split.sources, hashes)
            if not cache.lookup(spec.folder / f"{name}.png", key):
                todo.append((label, name, tuple(str(p) for p in sets[name]), key))
    for label in dict.fromkeys(item[0] for item in todo):
        remove_stale_temps(specs[label].folder)
        load_fuser(specs[label])  # a method that cannot run fails here, once; forked workers inherit it
    fused, errors = dict.fromkeys(runs, 0), []
    bar = Progress(f"fuse {split.dataset}", unit="image", show=progress)
    for done in execute(_fuse_one, todo, shared=specs, jobs=jobs, ordered=True, progress=bar):
        if done.error is None:
            fused[done.item[0]] += 1
        else:
            errors.append(f"{done.item[1]} [{done.item[0]}]: {done.error}")
    if errors:
        raise InputError(f"{len(errors)} image(s) could not be fused: " + "; ".join(errors[:3]))
    return fused


def _fuse_one(specs: Mapping[str, "FusedMethod"], item: tuple[str, str, tuple[str, ...], str]) -> str:
    """Fuse one scene with one run and record its key (a work item of :func:`fuse`)."""
    from ..api import fuse_files
    from ..evaluation import cache
    from ..evaluation.worker import load_fuser

    label, name, sources, key = item
    out = specs[label].folder / f"{name}.png"
    cache.record_path(out).unlink(missing_ok=True)  # no record may vouch for the image being replaced
    fuse_files(load_fuser(specs[label]), sources, out)
    cache.store(out, key)
    return str(out)


def run_side_by_side(jobs: Sequence[tuple[Sequence[str], Path]], folder: Path) -> None:
    """Start every ``(command, log file)`` at once and wait for all (e.g. ``fusekit train`` runs).

    Parameters
    ----------
    jobs : sequence of (sequence of str, Path)
        Each command's output (stdout and stderr) goes to its log file.
    folder : Path
        Created first; named in the error.

    Raises
    ------
    SystemExit
        Some command failed.
    """
    folder.mkdir(parents=True, exist_ok=True)
    procs = []
    for cmd, log_path in jobs:
        print(shlex.join(cmd), flush=True)
        log = log_path.open("w")
        procs.append((subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT), log))
    failed = 0
    for proc, log in procs:
        failed += proc.wait() != 0
        log.close()
    if failed:
        raise SystemExit(f"{failed} run(s) failed; see the .log files in {folder}")
