"""Run state on disk: training checkpoints (save, resume, start from), exported weights.

Functions of the state they save, called by :class:`~fusekit.training.trainer.Trainer`. A checkpoint holds
everything a resumed run needs to continue exactly as if it had not stopped:
the three networks, their optimisers, P's half-filled gradient window, the
samplers' states, the step, the wall time and the recent losses.
"""

from __future__ import annotations

import copy
import json
import platform
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .. import __version__
from ..errors import InputError, ParameterError, WeightsError
from ..io import atomic_file
from .bookkeeping import TrainResult
from .config import OBJECTIVE_SETTINGS, TrainConfig

if TYPE_CHECKING:  # pragma: no cover
    from .data import Batches

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "PARTS", "save_checkpoint", "load_checkpoint", "init_from",
           "read_checkpoint", "save_weights", "weights_metadata"]

#: Identifies a fusekit training checkpoint, and the version of its layout.
CHECKPOINT_FORMAT = "fusekit-train-checkpoint"
CHECKPOINT_VERSION = 1


def save_weights(state: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, Any]) -> Path:
    """Write a state dict as safetensors, atomically (temporary file + rename).

    Parameters
    ----------
    state : dict of str to Tensor
        Network weights (copied to CPU).
    path : path
        Target ``.safetensors`` file.
    metadata : dict
        Stored as strings in the safetensors header (task, method, steps...).
    """
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous().clone() for k, v in state.items()}
    with atomic_file(path, what="weights") as tmp:
        save_file(tensors, str(tmp), metadata={k: str(v) for k, v in metadata.items()})
    return path


#: The networks and optimisers of a checkpoint, in the order they are saved.
PARTS = ("fuser", "proposer", "reconstructor_net", "opt_fuser", "opt_recon", "opt_proposer")


def _identity(names: dict[str, str], task: str) -> dict[str, Any]:
    return {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, "method": names["method"],
            "loss_proposer": names["loss_proposer"], "reconstructor": names["reconstructor"], "task": task}


def save_checkpoint(path: Path, names: dict[str, str], config: TrainConfig, step: int, elapsed_s: float,
                    recent: list[dict[str, float]], batches: Batches, parts: dict[str, Any],
                    window: list[torch.Tensor] | None) -> Path:
    """Save everything a resumed run needs (atomic: temporary file + rename). Returns ``path``.

    Parameters
    ----------
    path : Path
        The checkpoint file.
    names, config : dict of str to str, TrainConfig
        The run's registry names (``method``, ``loss_proposer``, ``reconstructor``) and settings.
    step, elapsed_s, recent : int, float, list of dict of str to float
        Steps done, wall time of all sessions, the losses of the last steps.
    batches : Batches
        Its streams' states are saved.
    parts : dict of str to module or optimiser or None
        The networks and optimisers under their keys in the file
        (:data:`PARTS`); ``None`` saves an empty state.
    window : list of Tensor or None
        P's half-filled gradient window (``authors`` recipe), one tensor
        of each P parameter's shape.
    """
    meta = batches.meta_sampler
    state = {**_identity(names, config.task), "fusekit_version": __version__, "step": step,
             "elapsed_s": float(elapsed_s), "config": json.dumps(asdict(config)),
             "sampler_state": json.dumps(batches.sampler.state()),
             "meta_sampler_state": json.dumps(meta.state()) if meta is not None else "",
             "recent_losses": json.dumps(recent),
             **{key: part.state_dict() if part is not None else {} for key, part in parts.items()},
             "proposer_window": [g.detach().cpu() for g in window] if window is not None else []}
    with atomic_file(path, what="checkpoint") as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(path: str | Path, names: dict[str, str], config: TrainConfig, parts: dict[str, Any],
                    batches: Batches, rank: int) -> tuple[int, float, list[dict[str, float]], list[torch.Tensor]]:
    """Restore a checkpoint of :func:`save_checkpoint` into ``parts`` and ``batches``.

    ``names``, ``config``, ``parts`` and ``batches`` are as in
    :func:`save_checkpoint`; a part that is ``None`` is skipped. Process
    ``rank`` 0 gets the saved streams; the others (only rank 0's are saved)
    continue on fresh streams.

    Returns
    -------
    step, elapsed_s, recent : int, float, list of dict of str to float
        As saved.
    window : list of Tensor
        P's half-filled gradient window on the CPU (empty: none).

    Raises
    ------
    WeightsError
        The file is not a fusekit checkpoint, comes from another layout
        version, method, loss proposer, reconstructor or task, was
        trained with another objective setting (``OBJECTIVE_SETTINGS``), or
        does not fit the networks.
    ParameterError
        Its step is beyond ``config.steps``.
    """
    state = read_checkpoint(path)
    mine = _identity(names, config.task)
    for key in ("format_version", "method", "loss_proposer", "reconstructor", "task"):
        if state.get(key) != mine[key]:
            raise WeightsError(f"{path}: checkpoint is for {key.replace('_', ' ')} {state.get(key)!r}, "
                               f"this run uses {mine[key]!r}; resume with matching settings or start afresh")
    saved, defaults = json.loads(state.get("config", "{}")), {f.name: f.default for f in fields(TrainConfig)}
    for key in OBJECTIVE_SETTINGS:  # refuse to resume under another loss (an older checkpoint had the default)
        theirs, ours = saved.get(key, defaults[key]), getattr(config, key)
        if theirs != ours:
            option = "--" + key.replace("_", "-")
            raise WeightsError(f"{path}: checkpoint was trained with {option} {theirs}, this run uses "
                               f"{option} {ours}; resume with {option} {theirs} or start afresh")
    try:
        for key, part in parts.items():
            if part is not None:
                part.load_state_dict(state[key])
        if rank == 0:
            batches.sampler.set_state(json.loads(state["sampler_state"]))
            if batches.meta_sampler is not None and state.get("meta_sampler_state"):
                batches.meta_sampler.set_state(json.loads(state["meta_sampler_state"]))
        else:  # only rank 0's sampler is saved: the others continue on fresh streams
            fresh = np.random.SeedSequence([config.seed, rank, int(state["step"])])
            batches.sampler.set_state(np.random.default_rng(fresh).bit_generator.state)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise WeightsError(f"{path}: checkpoint does not fit the networks of this run "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0]}); start afresh") from exc
    step = int(state["step"])
    if step > config.steps:
        raise ParameterError(f"{path}: checkpoint is at step {step}, beyond --steps "
                             f"{config.steps}; raise --steps to continue training")
    return (step, float(state["elapsed_s"]), json.loads(state.get("recent_losses", "[]")),
            list(state.get("proposer_window") or []))


def weights_metadata(names: dict[str, str], config: TrainConfig, step: int, device: Any,
                     result: TrainResult | None = None) -> dict[str, str]:
    """Metadata stored with the exported fuser weights (``result``: the run's time and final losses)."""
    c = config
    meta = {"format": "fusekit-weights", "fusekit_version": __version__, "method": names["method"],
            "task": c.task, "loss_proposer": names["loss_proposer"], "reconstructor": names["reconstructor"],
            "steps": str(step), "seed": str(c.seed), "batch_size": str(c.batch_size),
            "patch_size": str(c.patch_size), "device": str(device), "machine": platform.node() or "unknown"}
    if result is not None:
        meta["train_seconds"] = f"{result.elapsed_s:.1f}"
        meta["final_losses"] = json.dumps({k: round(v, 6) for k, v in result.losses.items()})
    return meta


def init_from(path: str | Path, fuser: Any, parts: dict[str, Any], names: dict[str, str], task: str) -> list[str]:
    """Start F (and R, P where the file has them) from earlier training.

    Parameters
    ----------
    path : str or Path
        A fusekit training checkpoint (from any loss proposer: F and R
        are taken, P too if the proposers match), or any weights file
        the fuser itself loads (its ``weights`` option: for ReFusion,
        fusekit ``.safetensors`` or the authors' ``.pth``), F only.
    fuser : TorchFuser
        The method trained (its loader reads a weights file).
    parts : dict of str to torch.nn.Module
        The networks under their checkpoint keys ``fuser``, ``proposer``, ``reconstructor_net``.
    names, task : dict of str to str, str
        The run's registry names (``method``, ``loss_proposer``) and task.

    Returns
    -------
    list of str
        What was loaded: ``"fuser"``, ``"reconstructor"``, ``"proposer"``.

    Raises
    ------
    InputError
        The file does not exist.
    WeightsError
        Unreadable file, weights of another method or task, or tensors
        that do not fit the networks.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--init file {path} does not exist")
    state = read_checkpoint(path, or_none=True)
    if state is None:
        _load_fuser_weights(path, fuser, parts["fuser"], names["method"], task)
        return ["fuser"]
    for key, mine in (("method", names["method"]), ("task", task)):
        if state.get(key) != mine:
            raise WeightsError(f"{path}: checkpoint is for {key} {state.get(key)!r}, this run trains "
                               f"{mine!r}; pass --init weights of the same {key}")
    loaded = {"fuser": "fuser", "reconstructor": "reconstructor_net"}
    if state.get("loss_proposer") == names["loss_proposer"]:
        loaded["proposer"] = "proposer"
    for name, key in loaded.items():
        try:
            parts[key].load_state_dict(state[key])
        except RuntimeError as exc:
            raise WeightsError(f"{path}: checkpoint does not fit the {name} network of this run "
                               f"({str(exc).splitlines()[0]})") from exc
    return list(loaded)


def _load_fuser_weights(path: Path, fuser: Any, fuser_net: torch.nn.Module, method: str, task: str) -> None:
    """Load a weights file into ``fuser_net`` the way ``fuser`` loads its ``weights`` option."""
    if path.suffix == ".safetensors":  # fusekit weights say what they are for
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
        except Exception as exc:
            raise WeightsError(f"{path}: not readable safetensors weights ({type(exc).__name__}); "
                               f"pass weights written by 'fusekit train'") from exc
        for key, mine in (("method", method), ("task", task)):
            if meta.get(key) not in (None, mine):
                raise WeightsError(f"{path}: weights are for {key} {meta[key]!r}, this run trains "
                                   f"{mine!r}; pass --init weights of the same {key}")
    if not hasattr(fuser, "weights"):
        raise WeightsError(f"{path}: method {method!r} has no 'weights' option to load it "
                           f"with; pass a checkpoint written by 'fusekit train'")
    loader = copy.copy(fuser)
    loader.weights = path
    cpu_net = fuser.build_network()
    loader.load_weights(cpu_net)  # raises WeightsError naming the file
    fuser_net.load_state_dict(cpu_net.state_dict())


def read_checkpoint(path: str | Path, *, or_none: bool = False) -> dict[str, Any] | None:
    """Load a checkpoint safely (``weights_only=True``) and check its format.

    With ``or_none``, a file that is not a fusekit training checkpoint (not
    a torch file, a ``.safetensors`` file, another dict) gives ``None``.

    Raises
    ------
    InputError
        The file does not exist.
    WeightsError
        It is not a fusekit training checkpoint (without ``or_none``), or
        one of another layout version.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    try:
        if or_none and path.suffix == ".safetensors":
            return None
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if or_none:
            return None  # not a torch file at all: let the fuser's loader name the problem
        raise WeightsError(f"{path}: not a readable training checkpoint ({type(exc).__name__}); "
                           f"pass a file written by 'fusekit train --checkpoint'") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        if or_none:
            return None
        raise WeightsError(f"{path}: not a fusekit training checkpoint; pass a file written by "
                           f"'fusekit train --checkpoint'")
    if state.get("format_version") != CHECKPOINT_VERSION:
        raise WeightsError(f"{path}: checkpoint layout version {state.get('format_version')!r}, this fusekit "
                           f"reads version {CHECKPOINT_VERSION}; retrain or use the fusekit that wrote it")
    return state
