"""``fusekit train``: train a network fuser with a (learned or fixed) loss proposer."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import click

from ..errors import InputError, ParameterError
from ..interfaces import TASKS, LossProposer, Reconstructor, TorchFuser
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
              help="Pre-extracted patches (.npz with uint8 'patches' N x 2 x P x P); repeatable "
                   "(default: none; patches are cut from DATA_DIRS).")
@click.option("--steps", type=int, default=None,
              help="Total training steps.  [default: 1500; with --time-schedule and --max-minutes: as many as "
                   "the time budget allows]")
@click.option("--recipe", type=click.Choice(["fusekit", "authors"]), default="fusekit", show_default=True,
              help="Update rhythm: 'fusekit' (short meta/fusion cycles, Adam on P, cosine decay) or 'authors' "
                   "(ReFusion's released recipe: epochs of a meta phase then a fusion phase, P moved by "
                   "normalised SGD, tenfold decay every --decay-every epochs, gradient term ramped per epoch).")
@click.option("--epochs", type=int, default=None, help="authors recipe: epochs.  [default: 50]")
@click.option("--meta-batches", type=int, default=None,
              help="authors recipe: outer batches per meta phase.  [default: 600]")
@click.option("--fusion-batches", type=int, default=None,
              help="authors recipe: fusion steps per epoch.  [default: one pass over the training items]")
@click.option("--decay-every", type=int, default=None,
              help="authors recipe: divide the learning rate by 10 every N epochs (0: never).  [default: 10]")
@click.option("--accumulate", type=int, default=None,
              help="authors recipe: outer batches per update of the loss proposer.  [default: 2]")
@click.option("--direct-term/--no-direct-term", default=True, show_default=True,
              help="authors recipe: add the inner fusion loss's own gradient dL_fuse/dP to the proposer's "
                   "meta-gradient, as the authors' code does.")
@click.option("--proposer-step-scale", type=float, default=None,
              help="authors recipe: proposer step = this x the fuser's learning rate.  [default: 1]")
@click.option("--proposer-decay/--no-proposer-decay", default=True, show_default=True,
              help="authors recipe: the proposer's step decays with the fuser's learning rate (the authors' "
                   "code), or stays at the peak rate (a design change).")
@click.option("--symmetric-proposer", is_flag=True,
              help="Make the learned loss proposer's weights independent of the sources' order (it then "
                   "cannot collapse to 'intensity from the first input, gradient from the second').")
@click.option("--batch-size", type=int, default=None,
              help="Patch pairs per batch (doubled by the swapped-order copy).  [default: 4; authors recipe: 2]")
@click.option("--patch-size", type=int, default=48, show_default=True, help="Patch side in pixels.")
@click.option("--lr", type=float, default=None,
              help="Peak learning rate of fuser and reconstructor.  [default: 1e-3; authors recipe: 1e-4]")
@click.option("--lr-proposer", type=float, default=1e-3, show_default=True, help="Peak learning rate of the loss proposer.")
@click.option("--lr-schedule", type=click.Choice(["cosine", "constant"]), default="cosine", show_default=True)
@click.option("--lambda-grad", type=float, default=1.0, show_default=True, help="Final weight of the gradient terms.")
@click.option("--meta-steps", type=int, default=5, show_default=True, help="Meta steps per cycle.")
@click.option("--fusion-steps", type=int, default=20, show_default=True, help="Fusion steps per cycle.")
@click.option("--no-swap", is_flag=True, help="Do not feed pairs in swapped order too.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for torch (default: torch's choice).")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="Checkpoint file (default: OUTPUT with suffix .ckpt).")
@click.option("--checkpoint-every", type=int, default=500, show_default=True,
              help="Save a checkpoint every N steps (0: only at the end).")
@click.option("--resume", type=click.Path(path_type=Path), default=None,
              help="Continue from this checkpoint (default: start a new run).")
@click.option("--init", "init_path", type=click.Path(path_type=Path), default=None,
              help="Start from earlier training (fine-tuning): a checkpoint (fuser, reconstructor, and "
                   "proposer if it matches) or a weights file the method loads, e.g. .safetensors or the "
                   "authors' .pth (fuser only); steps count from 0 (default: freshly initialised networks).")
@click.option("--proposer-warmup", type=int, default=0, show_default=True,
              help="Steps fitting a learnable loss proposer to the hand-made 'fixed' loss before training.")
@click.option("--learn-weights", type=click.Choice(["both", "intensity"]), default="both", show_default=True,
              help="Weights a learnable loss proposer sets: both (ReFusion), or intensity only "
                   "(gradient weights from the fixed loss; an ablation).")
@click.option("--rec-reduction", type=click.Choice(["max", "mean"]), default="max", show_default=True,
              help="How the reconstruction loss (the proposer's meta-objective) combines the sources' "
                   "errors at a pixel: the worse one (ReFusion) or their mean (an ablation).")
@click.option("--log", "--loss-log", "log_path", type=click.Path(path_type=Path), default=None,
              help="CSV log of losses per step (under torchrun, spell it --loss-log: torchrun claims --log; "
                   "default: no log).")
@click.option("--card", type=click.Path(path_type=Path), default=None,
              help="Training card (JSON) to write (default: OUTPUT with suffix .json).")
@click.option("--max-minutes", type=float, default=None,
              help="Stop cleanly after this much wall time (counted from the start of the command), "
                   "saving checkpoint and weights (default: no time limit).")
@click.option("--time-schedule", is_flag=True,
              help="With --max-minutes: decay the learning rate and ramp the gradient terms over the time "
                   "budget, and train until it is spent (an explicit --steps still ends the run first). "
                   "Not bit-reproducible.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@click.pass_obj
def train_command(state: CliState, data_dirs: tuple[Path, ...], output: Path, method: str, task: str,
                  loss_proposer: str, reconstructor: str, patch_files: tuple[Path, ...], steps: int,
                  recipe: str, epochs: int | None, meta_batches: int | None, fusion_batches: int | None,
                  decay_every: int | None, accumulate: int | None, direct_term: bool,
                  proposer_step_scale: float | None, proposer_decay: bool, symmetric_proposer: bool,
                  batch_size: int | None,
                  patch_size: int, lr: float, lr_proposer: float, lr_schedule: str,
                  lambda_grad: float, meta_steps: int, fusion_steps: int, no_swap: bool, seed: int,
                  device: str, threads: int | None, checkpoint: Path | None, checkpoint_every: int,
                  resume: Path | None, init_path: Path | None, proposer_warmup: int, learn_weights: str,
                  rec_reduction: str,
                  log_path: Path | None, card: Path | None, max_minutes: float | None,
                  time_schedule: bool, progress: bool | None) -> None:
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
    from ..training.trainer import UNTIL_TIME_UP, TrainConfig, Trainer, TrainingInterrupted

    authors_only = {"epochs": epochs, "meta_batches": meta_batches, "fusion_batches": fusion_batches,
                    "decay_every": decay_every, "accumulate": accumulate, "proposer_step_scale": proposer_step_scale}
    if recipe == "authors":
        if steps is not None:
            raise ParameterError("the authors recipe counts in epochs; drop --steps and set --epochs, "
                                 "--meta-batches and --fusion-batches")
        steps = 1  # set from the epochs by the trainer
    else:
        given = ([k for k, v in authors_only.items() if v is not None] + ([] if direct_term else ["direct_term"])
                 + ([] if proposer_decay else ["proposer_decay"]))
        if given:
            raise ParameterError(f"--{given[0].replace('_', '-')} belongs to the authors recipe; add --recipe authors")
    if steps is None:  # a time-scheduled budget is meant to be filled, not cut short by the default
        steps = UNTIL_TIME_UP if time_schedule and max_minutes else TrainConfig.steps
    recipe_defaults = {"batch_size": 2, "lr": 1e-4} if recipe == "authors" else {"batch_size": 4, "lr": 1e-3}
    config = TrainConfig(task=task, steps=steps, batch_size=recipe_defaults["batch_size"] if batch_size is None
                         else batch_size, patch_size=patch_size, lr=recipe_defaults["lr"] if lr is None else lr,
                         lr_proposer=lr_proposer, lr_schedule=lr_schedule, lambda_grad=lambda_grad,
                         meta_steps=meta_steps, fusion_steps=fusion_steps, swap=not no_swap, seed=seed,
                         device=device, checkpoint_every=checkpoint_every, max_minutes=max_minutes,
                         time_schedule=time_schedule, proposer_warmup=proposer_warmup,
                         learn_weights=learn_weights, rec_reduction=rec_reduction, recipe=recipe,
                         direct_term=direct_term, proposer_decay=proposer_decay,
                         symmetric_proposer=symmetric_proposer,
                         **{k: v for k, v in authors_only.items() if v is not None})
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
        images.extend(load_pairs(pairs, patch_size))
        for d in data_dirs:
            data_desc.append({"folder": str(d), "pairs": sum(1 for a, _ in pairs if a.parent.parent == Path(d))})
    for pf in patch_files:
        patches = load_patch_file(pf, patch_size)
        images.extend(list(patches))
        data_desc.append({"patch_file": str(pf), "patches": int(len(patches)), "patch_side": int(patches.shape[2])})
    group = join_from_environment(device)  # a single process unless started by torchrun
    sampler = PatchSampler(images, patch_size, seed=sampler_seed(seed, group.rank), augment=True)

    if threads:
        import torch

        torch.set_num_threads(threads)
    fuser = _instantiate(fuser_cls, "method", method, task, device=device)
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
        "train_seconds": round(result.elapsed_s, 1), "seed": seed, "device": str(trainer.device),
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
