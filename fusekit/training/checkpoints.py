"""Run state on disk: training checkpoints (save, resume, start from), exported weights.

Mixed into :class:`~fusekit.training.trainer.Trainer`. A checkpoint holds
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
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..errors import InputError, ParameterError, WeightsError
from ..io import atomic_file
from .bookkeeping import TrainResult
from .config import OBJECTIVE_SETTINGS, TrainConfig

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "Checkpoints", "read_checkpoint", "save_weights"]

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


class Checkpoints:
    """Save, resume, start from earlier training, export (a mixin of :class:`~fusekit.training.trainer.Trainer`)."""

    def _identity(self) -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
                "method": self.names["method"], "loss_proposer": self.names["loss_proposer"],
                "reconstructor": self.names["reconstructor"], "task": self.config.task}

    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Save everything needed to resume (atomic). Returns the path."""
        path = Path(path) if path else self.checkpoint_path
        if path is None:
            raise ParameterError("no checkpoint path set")
        if not self.group.is_main:  # identical networks everywhere: rank 0 writes for the group
            return path
        state = {
            **self._identity(),
            "fusekit_version": __version__,
            "step": self.step,
            "elapsed_s": float(self.elapsed_before),
            "config": json.dumps(asdict(self.config)),
            "sampler_state": json.dumps(self.sampler.state()),
            "meta_sampler_state": json.dumps(self.meta_sampler.state()) if self.meta_sampler is not None else "",
            "recent_losses": json.dumps(self._recent),
            "fuser": self.fuser_net.state_dict(),
            "proposer": self.proposer_net.state_dict(),
            "reconstructor_net": self.recon_net.state_dict(),
            "opt_fuser": self.opt_fuser.state_dict(),
            "opt_recon": self.opt_recon.state_dict(),
            "opt_proposer": self.opt_proposer.state_dict() if self.opt_proposer is not None else {},
            "proposer_window": [g.detach().cpu() for g in self._p_window] if self._p_window is not None else [],
        }
        with atomic_file(path, what="checkpoint") as tmp:
            torch.save(state, tmp)
        return path

    def _check_objective(self, path: str | Path, saved: dict[str, Any]) -> None:
        """Refuse to resume under another loss: ``learn_weights`` and ``rec_reduction``
        must match the checkpoint's (a checkpoint older than a setting had its default)."""
        defaults = {f.name: f.default for f in fields(TrainConfig)}
        for key in OBJECTIVE_SETTINGS:
            theirs, ours = saved.get(key, defaults[key]), getattr(self.config, key)
            if theirs != ours:
                option = "--" + key.replace("_", "-")
                raise WeightsError(f"{path}: checkpoint was trained with {option} {theirs}, this run uses "
                                   f"{option} {ours}; resume with {option} {theirs} or start afresh")

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore a checkpoint saved by :meth:`save_checkpoint`.

        Raises
        ------
        WeightsError
            The file is not a fusekit checkpoint, comes from another layout
            version, method, loss proposer, reconstructor or task, was
            trained with another ``learn_weights`` or ``rec_reduction``, or
            does not fit the networks.
        """
        state = read_checkpoint(path)
        mine = self._identity()
        for key in ("format_version", "method", "loss_proposer", "reconstructor", "task"):
            if state.get(key) != mine[key]:
                raise WeightsError(f"{path}: checkpoint is for {key.replace('_', ' ')} {state.get(key)!r}, "
                                   f"this run uses {mine[key]!r}; resume with matching settings or start afresh")
        self._check_objective(path, json.loads(state.get("config", "{}")))
        try:
            self.fuser_net.load_state_dict(state["fuser"])
            self.proposer_net.load_state_dict(state["proposer"])
            self.recon_net.load_state_dict(state["reconstructor_net"])
            self.opt_fuser.load_state_dict(state["opt_fuser"])
            self.opt_recon.load_state_dict(state["opt_recon"])
            if self.opt_proposer is not None:
                self.opt_proposer.load_state_dict(state["opt_proposer"])
            window = state.get("proposer_window") or []
            self._p_window = [g.to(self.device) for g in window] if window else None
            if self.group.is_main:
                self.sampler.set_state(json.loads(state["sampler_state"]))
                if self.meta_sampler is not None and state.get("meta_sampler_state"):
                    self.meta_sampler.set_state(json.loads(state["meta_sampler_state"]))
            else:  # only rank 0's sampler is saved: the others continue on fresh streams
                fresh = np.random.SeedSequence([self.config.seed, self.group.rank, int(state["step"])])
                self.sampler.set_state(np.random.default_rng(fresh).bit_generator.state)
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise WeightsError(f"{path}: checkpoint does not fit the networks of this run "
                               f"({type(exc).__name__}: {str(exc).splitlines()[0]}); start afresh") from exc
        self.step = int(state["step"])
        self.elapsed_before = float(state["elapsed_s"])
        self._recent = json.loads(state.get("recent_losses", "[]"))
        if self.step > self.config.steps:
            raise ParameterError(f"{path}: checkpoint is at step {self.step}, beyond --steps "
                                 f"{self.config.steps}; raise --steps to continue training")

    def weights_metadata(self, result: TrainResult | None = None) -> dict[str, str]:
        """Metadata stored with the exported fuser weights."""
        c = self.config
        meta = {"format": "fusekit-weights", "fusekit_version": __version__, "method": self.names["method"],
                "task": c.task, "loss_proposer": self.names["loss_proposer"],
                "reconstructor": self.names["reconstructor"], "steps": str(self.step), "seed": str(c.seed),
                "batch_size": str(c.batch_size), "patch_size": str(c.patch_size),
                "device": str(self.device), "machine": platform.node() or "unknown"}
        if result is not None:
            meta["train_seconds"] = f"{result.elapsed_s:.1f}"
            meta["final_losses"] = json.dumps({k: round(v, 6) for k, v in result.losses.items()})
        return meta

    def export(self, path: str | Path, result: TrainResult | None = None) -> Path:
        """Write F's weights as safetensors with :meth:`weights_metadata`."""
        return save_weights(self.fuser_net.state_dict(), path, self.weights_metadata(result))

    def init_from(self, path: str | Path) -> list[str]:
        """Start F (and R, P where the file has them) from earlier training; step stays 0.

        Parameters
        ----------
        path : str or Path
            A fusekit training checkpoint (from any loss proposer: F and R
            are taken, P too if the proposers match), or any weights file
            the fuser itself loads (its ``weights`` option: for ReFusion,
            fusekit ``.safetensors`` or the authors' ``.pth``), F only.

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
        state = _training_checkpoint_or_none(path)
        if state is None:
            self._load_fuser_weights(path)
            return ["fuser"]
        for key, mine in (("method", self.names["method"]), ("task", self.config.task)):
            if state.get(key) != mine:
                raise WeightsError(f"{path}: checkpoint is for {key} {state.get(key)!r}, this run trains "
                                   f"{mine!r}; pass --init weights of the same {key}")
        parts = {"fuser": (self.fuser_net, state["fuser"]), "reconstructor": (self.recon_net, state["reconstructor_net"])}
        if state.get("loss_proposer") == self.names["loss_proposer"]:
            parts["proposer"] = (self.proposer_net, state["proposer"])
        for key, (net, state_dict) in parts.items():
            try:
                net.load_state_dict(state_dict)
            except RuntimeError as exc:
                raise WeightsError(f"{path}: checkpoint does not fit the {key} network of this run "
                                   f"({str(exc).splitlines()[0]})") from exc
        return list(parts)

    def _load_fuser_weights(self, path: Path) -> None:
        """Load a weights file into F the way the fuser loads its ``weights`` option."""
        if path.suffix == ".safetensors":  # fusekit weights say what they are for
            try:
                from safetensors import safe_open

                with safe_open(str(path), framework="pt") as fh:
                    meta = fh.metadata() or {}
            except Exception as exc:
                raise WeightsError(f"{path}: not readable safetensors weights ({type(exc).__name__}); "
                                   f"pass weights written by 'fusekit train'") from exc
            for key, mine in (("method", self.names["method"]), ("task", self.config.task)):
                if meta.get(key) not in (None, mine):
                    raise WeightsError(f"{path}: weights are for {key} {meta[key]!r}, this run trains "
                                       f"{mine!r}; pass --init weights of the same {key}")
        if not hasattr(self.fuser, "weights"):
            raise WeightsError(f"{path}: method {self.names['method']!r} has no 'weights' option to load it "
                               f"with; pass a checkpoint written by 'fusekit train'")
        loader = copy.copy(self.fuser)
        loader.weights = path
        cpu_net = self.fuser.build_network()
        loader.load_weights(cpu_net)  # raises WeightsError naming the file
        self.fuser_net.load_state_dict(cpu_net.state_dict())


def _training_checkpoint_or_none(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or ``None`` if the file is not a fusekit training checkpoint."""
    if path.suffix == ".safetensors":
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None  # not a torch file at all: let the fuser's loader name the problem
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        return None
    return _checked_version(state, path)


def _checked_version(state: dict[str, Any], path: Path) -> dict[str, Any]:
    """``state`` if its layout version is the one this fusekit reads, else WeightsError."""
    if state.get("format_version") != CHECKPOINT_VERSION:
        raise WeightsError(f"{path}: checkpoint layout version {state.get('format_version')!r}, this fusekit "
                           f"reads version {CHECKPOINT_VERSION}; retrain or use the fusekit that wrote it")
    return state


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``) and check its format.

    Raises
    ------
    InputError
        The file does not exist.
    WeightsError
        It is not a fusekit training checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{path}: not a readable training checkpoint ({type(exc).__name__}); "
                           f"pass a file written by 'fusekit train --checkpoint'") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(f"{path}: not a fusekit training checkpoint; pass a file written by "
                           f"'fusekit train --checkpoint'")
    return _checked_version(state, path)
