"""``fusekit explain``: picture the loss weights a meta-learned loss proposer asks for."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import ParameterError
from ..interfaces import TASKS
from . import CliState


@click.command("explain")
@click.argument("sources", nargs=2, type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Picture to write (.png).")
@click.option("-m", "--method", default="refusion", show_default=True, help="Network method with a loss proposer.")
@click.option("--task", type=click.Choice(TASKS), default=None,
              help="Task of the weights (default: from the source folders' names, e.g. under/ over/).")
@click.option("--weights", default=None,
              help="Shipped weights variant with a learned proposer, e.g. 'learned' ('fusekit info refusion' "
                   "lists them; default: the task's default variant, which may have none).")
@click.option("--height", type=click.IntRange(min=64, max=2048), default=256, show_default=True,
              help="Height of each panel in pixels.")
@click.pass_obj
def explain_command(state: CliState, sources: tuple[Path, Path], output: Path, method: str, task: str | None,
                    weights: str | None, height: int) -> None:
    """Draw SOURCES, their fused image and the learned loss's weight maps into OUTPUT.

    The loss proposal network of ReFusion (Bai et al., IJCV 2024) says, at
    every pixel, how much the fused image should follow each source's
    intensity and gradient. The picture shows the first source's weights
    (red: first source, blue: second, white: even split).

    \b
    Example:
      fusekit explain --task mfif --weights learned near.png far.png -o maps.png
      fusekit explain --task meif --weights learned under.png over.png -o maps.png
    """
    import numpy as np

    from .. import color, io
    from ..api import fuse_images
    from ..guard import refuse_output_over_inputs
    from ..explain import explain_figure

    if output.suffix.lower() != ".png":
        raise ParameterError(f"{output}: the picture is written as PNG; give a name ending in .png")
    if task is None:
        from ..datasets import detect_task

        task = detect_task(p.resolve().parent.name for p in sources)
        if task is None:
            raise ParameterError("give --task (" + ", ".join(TASKS) + "): the source folders' names do not "
                                 "say which task the images are")
        click.echo(f"note: task {task}, from the source folders' names", err=True)
    fuser_cls = state.host.fusers.get(method)
    options = {"task": task} if "task" in fuser_cls.option_names() else {}
    if weights is not None:
        options["weights"] = weights
    fuser = fuser_cls.create(**options)
    if not hasattr(fuser, "proposer_network"):
        raise ParameterError(f"method {method!r} has no learned loss proposer to explain; use a network "
                             f"method trained with a meta-learned loss, such as 'refusion'")
    refuse_output_over_inputs(output, list(sources))
    proposer = fuser.proposer_network()
    loaded = [io.load_image(p) for p in sources]
    fused = fuse_images(fuser, [im.data for im in loaded], [str(p) for p in sources])
    import torch

    lumas = np.stack([color.luminance(im.data) for im in loaded])[None]
    with torch.inference_mode():
        w_int, w_grad = proposer(torch.from_numpy(np.ascontiguousarray(lumas, dtype=np.float32)))
    # pairs usually share a file name (under/x.png, over/x.png): then the folder tells them apart
    names = [p.name if sources[0].name != sources[1].name else f"{p.parent.name}/{p.name}" for p in sources]
    picture = explain_figure([im.data for im in loaded], fused, w_int[0, 0].numpy(), w_grad[0, 0].numpy(),
                             names, height=height)
    io.write_image(output, picture.astype(np.float32) / 255.0)
    click.echo(f"wrote {output}: intensity weight of {names[0]} {float(w_int[0, 0].mean()):.2f}, "
               f"gradient weight {float(w_grad[0, 0].mean()):.2f} (mean over the image)", err=True)
