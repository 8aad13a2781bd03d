"""``fusekit train``: train a network fuser with a (learned or fixed) loss proposer."""

from __future__ import annotations

import json
import platform
import re
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

import click

from ..errors import InputError, ParameterError
from ..interfaces import TASKS, LossProposer, Reconstructor, TorchFuser
from ..training.config import RECIPE_DEFAULTS, UNTIL_TIME_UP, TrainConfig, field_help
from . import CliState


def _instantiate(cls: type, kind: str, name: str, task: str, **extra: Any) -> Any:
    """Create a registered class, passing ``task`` (and ``extra``) only where accepted."""
    import inspect

    params = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in {"task": task, **extra}.items() if k in params}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ParameterError(f"{kind} {name!r} cannot be created without options ({exc})") from exc


def _machine(device: str) -> str:
    import torch

    text = f"{platform.node() or 'unknown'} ({platform.machine()}, {platform.system()}, torch {torch.__version__}"
    if device.startswith("cuda") and torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name(torch.device(device))}"
    else:
        text += f", {torch.get_num_threads()} CPU threads"
    return text + ")"


_FIELDS = {f.name: f for f in fields(TrainConfig)}
_DOCS = field_help()
#: settings that belong to the authors recipe (their help says so)
_AUTHORS_ONLY = tuple(name for name, (_, text) in _DOCS.items() if text.startswith("authors recipe:"))
#: what the help adds to TrainConfig's description, where the command line differs from the library
_NOTES = {
    "steps": "[default: 1500; with --time-schedule and --max-minutes: as many as the time budget allows]",
    "max_minutes": "Counted from the start of the command (default: no time limit).",
    "time_schedule": "Trains until the budget is spent (an explicit --steps still ends the run first).",
}


def _setting(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A click option for :class:`TrainConfig` field ``name``, its type, choices, default and help taken
    from the field and TrainConfig's docstring. Options whose default depends on the recipe
    (:data:`RECIPE_DEFAULTS`), ``--steps`` and the authors recipe's own are ``None`` when not given."""
    kind, text = _DOCS[name]
    default = _FIELDS[name].default
    flag = "--" + name.replace("_", "-")
    text = re.sub(r"\b(" + "|".join(n for n in _FIELDS if "_" in n) + r")\b",
                  lambda m: "--" + m.group(1).replace("_", "-"), text)
    if kind == "bool":
        flags = f"{flag}/--no-{flag[2:]}" if default else flag
        return click.option(flags, name, is_flag=True, default=default, show_default=default,
                            help=f"{text}  {_NOTES.get(name, '')}".rstrip())
    types = {"int": int, "float": float, "str": str, "float or None": float}
    kw: dict[str, Any] = {"type": click.Choice(re.findall(r'"(\w+)"', kind)) if kind.startswith("{") else types[kind]}
    per_recipe = [f"{recipe} recipe: {values[name]:g}" for recipe, values in RECIPE_DEFAULTS.items() if name in values]
    if per_recipe or name in _AUTHORS_ONLY or name == "steps":
        note = _NOTES.get(name, f"[default: {'; '.join([f'{default:g}', *per_recipe])}]")
        return click.option(flag, name, default=None, help=f"{text}  {note}", **kw)
    return click.option(flag, name, default=default, show_default=True,
                        help=f"{text}  {_NOTES.get(name, '')}".rstrip(), **kw)


def _settings(command: Callable[..., Any]) -> Callable[..., Any]:
    """Every :class:`TrainConfig` field but ``task`` as an option (:func:`_setting`), in the fields' order."""
    for name in reversed([n for n in _FIELDS if n != "task"]):
        command = _setting(name)(command)
    return command


@click.command("train")
@click.argument("data_dirs", nargs=-1, type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Fuser weights to write (.safetensors, written atomically at the end).")
@click.option("-m", "--method", default="refusion", show_default=True, help="Network fuser to train.")
@click.option("--task", required=True, type=click.Choice(TASKS), help="Fusion task (decides the source order).")
@click.option("--loss-proposer", default="refusion", show_default=True,
              help="Loss proposer: 'refusion' (meta-learned) or 'fixed' (hand-made loss).")
@click.option("--reconstructor", default="refusion", show_default=True, help="Reconstruction network.")
@click.option("--patches", "patch_files", multiple=True, type=click.Path(path_type=Path),
              help="Pre-extracted patches (.npz with uint8 'patches' N x S x P x P); repeatable "
                   "(default: none; patches are cut from DATA_DIRS).")
@_settings
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for torch (default: torch's choice).")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="Checkpoint file (default: OUTPUT with suffix .ckpt).")
@click.option("--resume", type=click.Path(path_type=Path), default=None,
              help="Continue from this checkpoint (default: start a new run).")
@click.option("--init", "init_path", type=click.Path(path_type=Path), default=None,
              help="Start from earlier training (fine-tuning): a checkpoint (fuser, reconstructor, and "
                   "proposer if it matches) or a weights file the method loads, e.g. .safetensors or the "
                   "authors' .pth (fuser only); steps count from 0 (default: freshly initialised networks).")
@click.option("--log", "--loss-log", "log_path", type=click.Path(path_type=Path), default=None,
              help="CSV log of losses per step (under torchrun, spell it --loss-log: torchrun claims --log; "
                   "default: no log).")
@click.option("--card", type=click.Path(path_type=Path), default=None,
              help="Training card (JSON) to write (default: OUTPUT with suffix .json).")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@click.pass_obj
def train_command(state: CliState, data_dirs: tuple[Path, ...], output: Path, method: str, task: str,
                  loss_proposer: str, reconstructor: str, patch_files: tuple[Path, ...], threads: int | None,
                  checkpoint: Path | None, resume: Path | None, init_path: Path | None, log_path: Path | None,
                  card: Path | None, progress: bool | None, **settings: Any) -> None:
    """Train METHOD's network for one task on DATA_DIRS, writing weights to OUTPUT.

    Each DATA_DIR holds one sub-folder per modality with matching file names
    (the layout of 'fusekit eval'): ir/ + vi/ (ivif), ct/|pet/|spect/ + mri/
    (mif), a/ + b/ (mfif), under/ + over/ (meif).

    \b
    Examples:
      fusekit train --task ivif data/ivif/tno/train data/ivif/roadscene/train -o ivif.safetensors
      fusekit train --task ivif --loss-proposer fixed DATA -o ivif-fixed.safetensors
      fusekit train --task mif --patches mif.npz --device cuda --max-minutes 30 -o mif.safetensors
      fusekit train --task ivif DATA -o ivif.safetensors --resume ivif.ckpt
      fusekit train --task ivif DATA --init ivif-fixed.ckpt --proposer-warmup 200 -o ivif-ft.safetensors
      torchrun --nproc-per-node 4 -m fusekit train --task ivif DATA --device cuda -o ivif.safetensors

    Under torchrun each process trains on its own patches (--batch-size
    each) and gradients are averaged over all of them; rank 0 writes the
    outputs.

    The meta-learning scheme is ReFusion's (Bai et al., IJCV 2024): the loss
    proposer learns pixel-wise loss weights so that the reconstructor can
    rebuild every source from the fused image. '--loss-proposer fixed'
    trains the same network with the classic hand-made loss instead.
    """
    clock_start = time.monotonic()  # --max-minutes counts from here: loading data is part of it
    from ..training.data import PatchSampler, find_pairs, load_pairs, load_patch_file
    from ..training.distributed import join_from_environment, sampler_seed
    from ..training.trainer import Trainer, TrainingInterrupted

    recipe = settings["recipe"]
    if recipe == "authors":
        if settings["steps"] is not None:
            raise ParameterError("the authors recipe counts in epochs; drop --steps and set --epochs, "
                                 "--meta-batches and --fusion-batches")
        settings["steps"] = 1  # set from the epochs by the trainer
    else:
        given = [k for k in _AUTHORS_ONLY if settings[k] is not None and settings[k] is not True]  # True: a default
        if given:
            raise ParameterError(f"--{given[0].replace('_', '-')} belongs to the authors recipe; add --recipe authors")
    if settings["steps"] is None and settings["time_schedule"] and settings["max_minutes"]:
        settings["steps"] = UNTIL_TIME_UP  # a time-scheduled budget is meant to be filled, not cut short
    chosen = {k: v for k, v in settings.items() if v is not None}
    config = TrainConfig(task=task, **{**RECIPE_DEFAULTS[recipe], **chosen})
    config.validate()
    host = state.host
    fuser_cls = host.fusers.get(method)
    proposer_cls = host.loss_proposers.get(loss_proposer)
    recon_cls = host.reconstructors.get(reconstructor)
    if not (isinstance(fuser_cls, type) and issubclass(fuser_cls, TorchFuser)):
        raise ParameterError(f"method {method!r} has no network to train; pick a network method "
                             f"such as 'refusion'")
    if task not in fuser_cls.tasks:
        raise ParameterError(f"method {method!r} is for tasks {', '.join(fuser_cls.tasks)}, not {task!r}")
    if not issubclass(proposer_cls, LossProposer) or not issubclass(recon_cls, Reconstructor):
        raise ParameterError("registered loss proposer / reconstructor do not implement the interfaces")
    if not data_dirs and not patch_files:
        raise InputError("no training data; pass DATA_DIR folders and/or --patches FILE.npz")
    if output.suffix != ".safetensors":
        raise ParameterError(f"output {output} should end in .safetensors")
    if output.is_dir():
        raise InputError(f"output {output} is a folder; give a file name such as {output / 'weights.safetensors'}")
    from ..guard import check_writable

    # every file the run writes must be writable before hours of training, not after
    for path, option in ((output, "-o"), (checkpoint or output.with_suffix(".ckpt"), "--checkpoint"),
                         (card or output.with_suffix(".json"), "--card"), (log_path, "--log")):
        if path is not None:
            check_writable(path, option=option)

    # everything that can be wrong with the input is checked before training
    images: list[Any] = []
    data_desc: list[dict[str, Any]] = []
    if data_dirs:
        pairs = find_pairs(data_dirs, task)
        images.extend(load_pairs(pairs, config.patch_size))
        for d in data_dirs:
            data_desc.append({"folder": str(d), "pairs": sum(1 for s in pairs if s[0].parent.parent == Path(d))})
    for pf in patch_files:
        patches = load_patch_file(pf, config.patch_size)
        images.extend(list(patches))
        data_desc.append({"patch_file": str(pf), "patches": int(len(patches)), "patch_side": int(patches.shape[2])})
    group = join_from_environment(config.device)  # a single process unless started by torchrun
    sampler = PatchSampler(images, config.patch_size, seed=sampler_seed(config.seed, group.rank),
                           augment=config.augment, min_std=config.min_std)

    if threads:
        import torch

        torch.set_num_threads(threads)
    fuser = _instantiate(fuser_cls, "method", method, task, device=config.device)
    proposer = _instantiate(proposer_cls, "loss proposer", loss_proposer, task)
    recon = _instantiate(recon_cls, "reconstructor", reconstructor, task)
    checkpoint = checkpoint or output.with_suffix(".ckpt")
    card = card or output.with_suffix(".json")
    trainer = Trainer(fuser, proposer, recon, sampler, config,
                      names={"method": method, "loss_proposer": loss_proposer, "reconstructor": reconstructor},
                      checkpoint_path=checkpoint, log_path=log_path, progress=progress, group=group)
    say = click.echo if group.is_main else (lambda *args, **kwargs: None)
    if resume is not None and init_path is not None:
        raise ParameterError("--resume continues a run and --init starts a new one from earlier weights; "
                             "pass only one of them")
    if resume is not None:
        trainer.load_checkpoint(resume)
        say(f"resumed from {resume} at step {trainer.step}", err=True)
    if init_path is not None:
        loaded = trainer.init_from(init_path)
        say(f"initialised {', '.join(loaded)} from {init_path}", err=True)

    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        result = trainer.run(clock_start=clock_start)
    except TrainingInterrupted as exc:
        say(f"error: {exc}", err=True)
        raise click.exceptions.Exit(130) from None
    finally:
        group.leave()
    if not group.is_main:
        return
    trainer.export(output, result)
    card_data = {
        "method": method, "task": task, "loss_proposer": loss_proposer, "reconstructor": reconstructor,
        "weights": str(output), "data": data_desc, "steps": result.step, "stopped": result.stopped,
        "train_seconds": round(result.elapsed_s, 1), "seed": config.seed, "device": str(trainer.device),
        "processes": group.world_size,
        "machine": _machine(str(trainer.device)), "started_utc": started,
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "final_losses": {k: round(v, 6) for k, v in result.losses.items()},
        "config": json.loads(json.dumps(trainer.config.__dict__)),
        "checkpoint": str(checkpoint), "log": str(log_path) if log_path else None,
        "init": str(init_path) if init_path else None,
        "proposer_warmup_error": None if trainer.warmup_error is None else round(trainer.warmup_error, 6),
    }
    card.parent.mkdir(parents=True, exist_ok=True)
    card.write_text(json.dumps(card_data, indent=2) + "\n")
    note = " (time budget reached)" if result.stopped == "time" else ""
    click.echo(f"trained {result.step} steps in {result.elapsed_s:.0f} s{note}; wrote {output} and {card}", err=True)
