"""``fusekit fuse``: fuse one set of images, or every matching set in folders."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import click

from ..api import fuse_files
from ..datasets import IMAGE_SUFFIXES, match_folders
from ..errors import InputError, UsageError
from ..guard import (check_writable, check_writable_folder, refuse_output_over_inputs,
                     refuse_outputs_in_folder_over_inputs)
from ..interfaces import TASKS, Fuser
from ..io import remove_stale_temps
from ..plugins import PluginHost
from . import CliState, echo_error
from .limits import max_pixels_option
from .options import method_flags, method_options, parse_param

__all__ = ["make_fuse_command", "fuse_command", "match_folders", "parse_param"]  # the last two for scripts


@click.command("fuse")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Output image (or output folder when the sources are folders).")
@click.option("-m", "--method", default="refusion", show_default=True,
              help="Fusion method; 'fusekit methods' lists them.")
@click.option("--task", type=click.Choice(TASKS), default=None,
              help="What the sources are, for methods with a task option (default: from the source folder "
                   "names, e.g. under/ over/); other methods ignore it.")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Method option, repeatable, e.g. -p levels=4 (default: the method's own values; "
                   "'fusekit info METHOD' lists them).")
@click.option("--bit-depth", type=click.Choice(["8", "16"]), default=None,
              help="Output bit depth (default: 16 if any source is 16-bit, else 8).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Folder mode: worker processes fusing sets in parallel.")
@click.option("--ext", default="png", show_default=True,
              help="Output file extension in folder mode.")
@click.option("--dask", "dask_address", default=None, metavar="ADDRESS",
              help="Folder mode: fuse on a Dask cluster (tcp://host:8786; workers must see the same "
                   "paths), or 'local' for -j worker processes here. Needs pip install 'fusekit[dask]' "
                   "(default: no cluster; -j processes on this machine).")
@max_pixels_option
@click.pass_obj
def fuse_command(state: CliState, sources: tuple[Path, ...], output: Path, method: str,
                 task: str | None, params: tuple[str, ...], bit_depth: str | None,
                 jobs: int, ext: str, dask_address: str | None = None, **method_flags: Any) -> None:
    """Fuse SOURCES (two or more images, or two or more folders) into OUTPUT.

    \b
    Images:  fusekit fuse -m average ir.png vi.png -o fused.png
    Folders: fusekit fuse -m average ir/ vi/ -o fused/ [-j 4]
             (fuses every set of files that share a name, any extension)

    Source order matters for learned methods: infrared then visible,
    CT/PET/SPECT then MRI, near then far focus, under then over exposure.
    Folder mode shows a progress bar on a terminal (sets done, rate, time
    left) and ends with a count of fused and failed sets. Methods add
    flags for the options they declare (see 'fusekit info METHOD').
    """
    cls = state.host.fusers.get(method)
    missing = [str(s) for s in sources if not s.exists()]
    if missing:
        raise InputError(f"{missing[0]}: file not found; check the path")
    options = method_options(cls, params, {"task": task, **method_flags}, sources,
                             lambda line: click.echo(f"note: {line}", err=True))
    fuser = cls.create(**options)
    depth = int(bit_depth) if bit_depth else None
    folders = [s.is_dir() for s in sources]
    if any(folders) and not all(folders):
        raise InputError("sources mix folders and files; pass only image files or only folders")
    if all(folders):
        if f".{ext.lstrip('.').lower()}" not in IMAGE_SUFFIXES:
            raise UsageError(f"--ext {ext}: unknown image format; use one of "
                             + ", ".join(e.lstrip(".") for e in IMAGE_SUFFIXES))
        _fuse_folders(fuser, list(sources), output, depth, ext.lstrip("."), jobs, dask_address)
        return
    if dask_address:
        raise InputError("--dask fuses folders; pass source folders, or drop --dask for single images")
    if output.is_dir():
        raise InputError(f"{output}: is a folder; give an output file name such as {output / 'fused.png'}")
    if output.suffix.lower() not in IMAGE_SUFFIXES:
        raise UsageError(f"{output}: unknown output format {output.suffix or '(no extension)'!r}; use one of "
                         + ", ".join(IMAGE_SUFFIXES))
    refuse_output_over_inputs(output, sources)
    check_writable(output)
    remove_stale_temps(output.parent if str(output.parent) else ".")
    fuser.prepare()
    fuse_files(fuser, sources, output, bit_depth=depth)
    click.echo(f"wrote {output}", err=True)


def make_fuse_command(host: PluginHost) -> click.Command:
    """``fusekit fuse`` with a flag for every option the host's methods declare with ``flag=True``.

    Parameters
    ----------
    host : PluginHost
        The installed plugins; :func:`fusekit.cli.options.method_flags`
        builds the flags from their fusers' declarations.

    Returns
    -------
    click.Command
        :data:`fuse_command` (the core options only) plus those flags.
    """
    command = copy.copy(fuse_command)
    command.params = [*fuse_command.params, *method_flags(entry.obj for entry in host.fusers)]
    return command


def _fuse_folders(fuser: Fuser, folders: list[Path], output: Path, depth: int | None, ext: str,
                  jobs: int = 1, dask_address: str | None = None) -> None:
    from ..batch import fuse_sets

    if output.exists() and not output.is_dir():
        raise InputError(f"{output}: exists and is not a folder; in folder mode -o names a folder")
    refuse_output_over_inputs(output, folders, what="source folder")
    sets, problems = match_folders(folders)
    if not sets and not problems:
        raise InputError(f"no images in {', '.join(map(str, folders))}; expected files with matching names")
    outputs = {name: output / f"{name}.{ext}" for name in sets}
    refuse_outputs_in_folder_over_inputs(outputs.values(), [p for paths in sets.values() for p in paths])
    check_writable_folder(output)
    remove_stale_temps(output)  # left by a run that was killed (SIGKILL) while writing
    fuser.prepare()
    finished: dict[str, str | None] = {}
    total = len(sets) + len(problems)
    try:
        failed = fuse_sets(fuser, sets, outputs, bit_depth=depth, jobs=jobs, dask=dask_address, progress=None,
                           on_done=finished.__setitem__)
    except KeyboardInterrupt:
        done = sum(error is None for error in finished.values())
        echo_error(f"interrupted after fusing {done} of {total} sets into {output}; each written file is "
                   "complete and no temporary file is left")
        raise click.exceptions.Exit(130) from None
    failures = {**problems, **failed}
    done = len(sets) - len(failed)
    click.echo(f"fused {done} of {total} sets into {output}", err=True)
    if failures:
        click.echo(f"{len(failures)} failed:", err=True)
        for name in sorted(failures):
            echo_error(f"{name}: {failures[name]}")
        raise click.exceptions.Exit(1)
