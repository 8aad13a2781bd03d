"""``fusekit fuse``: fuse one set of images, or every matching set in folders."""

from __future__ import annotations

import copy
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

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
from .jobs import jobs_option
from .limits import max_pixels_option
from .memory import keep_freed_memory
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
@jobs_option(1, "image sets; folder mode")
@click.option("--ext", default="png", show_default=True,
              help="Output file extension in folder mode.")
@click.option("--dask", "dask_address", default=None, metavar="ADDRESS",
              help="Folder mode: fuse on a Dask cluster (tcp://host:8786; workers must see the same "
                   "paths), or 'local' for -j worker processes here. Needs pip install 'fusekit[dask]' "
                   "(default: no cluster; -j processes on this machine).")
@click.option("--progress/--no-progress", default=None,
              help="Progress on stderr: a bar of sets in folder mode; for one set, the elapsed time once it "
                   "takes over a second (and the steps done, for methods that report them) "
                   "(default: only when stderr is a terminal).")
@max_pixels_option
@click.pass_obj
def fuse_command(state: CliState, sources: tuple[Path, ...], output: Path, method: str,
                 task: str | None, params: tuple[str, ...], bit_depth: str | None,
                 jobs: int, ext: str, dask_address: str | None = None, progress: bool | None = None,
                 **method_flags: Any) -> None:
    """Fuse SOURCES (two or more images, or two or more folders) into OUTPUT.

    \b
    Images:  fusekit fuse -m average ir.png vi.png -o fused.png
    Folders: fusekit fuse -m average ir/ vi/ -o fused/ [-j 4]
             (fuses every set of files that share a name, any extension)

    Source order matters for learned methods: infrared then visible,
    CT/PET/SPECT then MRI, near then far focus, under then over exposure.
    On a terminal, folder mode shows a progress bar (sets done, rate, time
    left) and ends with a count of fused and failed sets; a single fuse
    that takes over a second shows its elapsed time (and the tiles done,
    for methods that report them). --no-progress turns both off. Methods
    add flags for the options they declare (see 'fusekit info METHOD').
    """
    keep_freed_memory()
    cls = state.host.fusers.get(method)
    missing = [s for s in sources if not s.exists()]
    if missing:
        raise InputError(f"{missing[0]}: {_missing_kind(missing[0], sources, output)} not found; check the path")
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
        _fuse_folders(fuser, list(sources), output, depth, ext.lstrip("."), jobs, dask_address, progress)
        return
    if dask_address:
        raise UsageError("--dask fuses folders; pass source folders, or drop --dask for single images")
    if output.is_dir():
        raise UsageError(f"{output}: is a folder; give an output file name such as {output / 'fused.png'}")
    if output.suffix.lower() not in IMAGE_SUFFIXES:
        raise UsageError(f"{output}: unknown output format {output.suffix or '(no extension)'!r}; use one of "
                         + ", ".join(IMAGE_SUFFIXES))
    refuse_output_over_inputs(output, sources)
    check_writable(output)
    remove_stale_temps(output.parent if str(output.parent) else ".")
    fuser.prepare()
    with Elapsed(f"fuse {fuser.name}", show=progress) as elapsed:
        fuse_files(fuser, sources, output, bit_depth=depth, progress=elapsed.report)
    click.echo(f"wrote {output}", err=True)


def _missing_kind(path: Path, sources: tuple[Path, ...], output: Path) -> str:
    """``"folder"`` for a missing source of a folder-mode run, else ``"file"``.

    Folder mode: the path has no image extension and another source is a
    folder, or the output has no extension either (``-o fused/``).
    """
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return "file"
    folder_mode = any(s.is_dir() for s in sources) or not output.suffix
    return "folder" if folder_mode else "file"


#: A single fuse shows its elapsed-time line once it has run this many seconds.
SHOW_AFTER_S = 1.0
#: Seconds between redraws of that line.
REDRAW_S = 0.2


class Elapsed:
    """An elapsed-time line on stderr for one long fuse, redrawn in place by a background thread.

    Works for any method: it shows a spinner and the seconds spent, plus
    ``step DONE/TOTAL (P%)`` once the fuser calls
    :func:`fusekit.interfaces.report_progress` (passed to it as
    :meth:`report`). Nothing is written before :data:`SHOW_AFTER_S`, so
    quick fuses stay silent; when shown, the line is finished with the
    total time. Never writes to stdout.

    Parameters
    ----------
    label : str
        Shown before the time (``"fuse refusion"``).
    show : bool or None
        ``None``: only when ``stream`` is a terminal.
    stream : text stream, optional
        Default: ``sys.stderr``.
    """

    _SPIN = "|/-\\"

    def __init__(self, label: str, show: bool | None = None, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        if show is None:
            try:
                show = bool(self.stream.isatty())
            except (AttributeError, ValueError):
                show = False
        self.show = show
        self.done: int | None = None
        self.total: int | None = None
        self.shown = False
        self._start = 0.0
        self._width = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def report(self, done: int, total: int | None = None) -> None:
        """Record progress (any thread): ``done`` of ``total`` steps."""
        self.done, self.total = done, total

    def text(self, frame: int | None = None) -> str:
        """The line as it is now (``frame``: spinner position; ``None`` for the final line)."""
        seconds = time.monotonic() - self._start
        line = f"{self.label}: {seconds:.1f} s" if frame is None else \
            f"{self._SPIN[frame % len(self._SPIN)]} {self.label}: {seconds:.0f} s"
        if self.done is not None:
            line += f", step {self.done}" + (f"/{self.total}" if self.total else "")
            if self.total:
                line += f" ({100 * min(self.done, self.total) // self.total}%)"
        return line

    def _draw(self, line: str, end: str = "") -> None:
        pad = " " * max(0, self._width - len(line))
        self._width = len(line)
        try:
            self.stream.write(f"\r{line}{pad}{end}")
            self.stream.flush()
        except (OSError, ValueError):  # stderr closed: progress is not worth failing for
            self._stop.set()

    def _run(self) -> None:
        if self._stop.wait(SHOW_AFTER_S):
            return
        frame = 0
        while not self._stop.is_set():
            self.shown = True
            self._draw(self.text(frame))
            frame += 1
            self._stop.wait(REDRAW_S)

    def __enter__(self) -> "Elapsed":
        self._start = time.monotonic()
        if self.show:
            self._thread = threading.Thread(target=self._run, name="fusekit-elapsed", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.shown:
            self._draw(self.text() if exc_type is None else self.text() + " (stopped)", end="\n")


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
                  jobs: int = 1, dask_address: str | None = None, progress: bool | None = None) -> None:
    from ..batch import fuse_sets

    if output.exists() and not output.is_dir():
        raise UsageError(f"{output}: exists and is not a folder; in folder mode -o names a folder")
    if not output.exists() and output.suffix.lower() in IMAGE_SUFFIXES:
        raise UsageError(f"{output}: looks like an image file, but folder sources give one fused image per set "
                         f"into a folder; give a folder such as {output.with_suffix('')}/")
    refuse_output_over_inputs(output, folders, what="source folder")
    sets, problems = match_folders(folders)
    if not sets and not problems:
        raise InputError(f"no images in {', '.join(map(str, folders))}; expected files with matching names")
    if not sets:
        raise InputError(f"{', '.join(map(str, folders))}: no file name is in every folder, so no set can be "
                         f"fused; sets are matched by name (a/12.png with b/12.png, any extension)")
    outputs = {name: output / f"{name}.{ext}" for name in sets}
    refuse_outputs_in_folder_over_inputs(outputs.values(), [p for paths in sets.values() for p in paths])
    check_writable_folder(output)
    remove_stale_temps(output)  # left by a run that was killed (SIGKILL) while writing
    fuser.prepare()
    finished: dict[str, str | None] = {}
    total = len(sets) + len(problems)
    try:
        failed = fuse_sets(fuser, sets, outputs, bit_depth=depth, jobs=jobs, dask=dask_address, progress=progress,
                           on_done=finished.__setitem__)
    except KeyboardInterrupt:
        # the workers are stopped by now; one killed after the grace period (a loaded machine) may have
        # left its temporary file: remove what dead processes left
        remove_stale_temps(output)
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
