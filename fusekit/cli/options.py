"""Method options on the command line: ``-p KEY=VALUE``, the shortcut flags, the task.

A method's options are the keyword options of its ``__init__``
(:meth:`fusekit.Fuser.option_names`); the core names no method. ``fusekit
fuse`` keeps four shortcut flags for common options:

``--task``
    Describes the *data* (which kind of images these are), not a method, so
    every method takes it: a method with a ``task`` option gets it, any other
    ignores it with a one-line note (as ``fusekit eval`` gives the dataset's
    task only to the methods that have the option). A method with a ``task``
    option and no ``--task`` gets the task the source folders name
    (:func:`fusekit.datasets.detect_task`), or keeps its default; a note says
    which.
``--weights``, ``--device``, ``--stretch/--no-stretch``
    Configure a method. A method without the option refuses them with the
    same message as an unknown ``-p`` key (which lists its options): a
    weights file or a GPU request that silently did nothing would mislead.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any, Callable, Sequence

from ..datasets import LAYOUTS, detect_task
from ..errors import ParameterError
from ..interfaces import Fuser


def parse_param(text: str) -> tuple[str, Any]:
    """Parse ``KEY=VALUE``; VALUE as a Python literal (number, bool, None) or a string."""
    key, sep, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key:
        raise ParameterError(f"option {text!r} is not KEY=VALUE; write e.g. -p levels=4")
    lowered = raw.strip().lower()
    if lowered in ("true", "yes", "on"):
        return key, True
    if lowered in ("false", "no", "off"):
        return key, False
    try:
        return key, ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError):
        return key, raw


def _folder_name(path: Path) -> str:
    """The folder a source names: itself if a folder, else the folder holding the file."""
    path = Path(path).resolve()
    return path.name if path.is_dir() else path.parent.name


def _default_of(cls: type[Fuser], option: str) -> Any:
    param = inspect.signature(cls.__init__).parameters[option]
    return None if param.default is inspect.Parameter.empty else param.default


def infer_task(cls: type[Fuser], sources: Sequence[Path], note: Callable[[str], None]) -> str | None:
    """The task the source folders name, for a method with a ``task`` option; a note says which.

    Parameters
    ----------
    cls : Fuser subclass
    sources : sequence of Path
        Source files (their parent folders count) or source folders.
    note : callable
        Receives one line for the user.

    Returns
    -------
    str or None
        The detected task, or ``None`` (the method keeps its default).
    """
    names = [_folder_name(s) for s in sources]
    shown = ", ".join(f"{n}/" for n in names)
    task = detect_task(names)
    if task is None:
        note(f"{cls.name}: no --task given and the source folders ({shown}) name no task; "
             f"using its default task {_default_of(cls, 'task')!r} (give --task to choose)")
        return None
    line = f"{cls.name}: task {task} from the source folders ({shown}); give --task to override"
    if any(not LAYOUTS[task][i].accepts(n) for i, n in enumerate(names)):
        labels = " then ".join(s.label for s in LAYOUTS[task])
        line += f"; but {task} expects {labels}: pass the sources in that order"
    note(line)
    return task


def method_options(cls: type[Fuser], params: Sequence[str], flags: dict[str, Any],
                   sources: Sequence[Path], note: Callable[[str], None]) -> dict[str, Any]:
    """The options to create ``cls`` with, from ``-p`` values, the shortcut flags and the sources.

    Parameters
    ----------
    cls : Fuser subclass
    params : sequence of str
        ``KEY=VALUE`` texts of ``-p``.
    flags : dict
        Shortcut flag name -> value (``None``: not given); see the module
        docstring for how ``task`` differs from the others.
    sources : sequence of Path
        The command's sources, for task inference.
    note : callable
        Receives one-line notes for the user.

    Returns
    -------
    dict
        Options for :meth:`fusekit.Fuser.create` (which refuses unknown ones).
    """
    options: dict[str, Any] = dict(parse_param(p) for p in params)
    accepted = cls.option_names()
    for key, value in flags.items():
        if value is None:
            continue
        if key == "task" and "task" not in accepted:
            suits = "" if value in cls.tasks else f" (it is meant for {', '.join(cls.tasks)})"
            note(f"{cls.name} has no task option; --task {value} ignored{suits}")
            continue
        options[key] = str(value) if isinstance(value, Path) else value
    if "task" in accepted and "task" not in options:
        task = infer_task(cls, sources, note)
        if task is not None:
            options["task"] = task
    return options
