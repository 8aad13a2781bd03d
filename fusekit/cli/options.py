"""Method options on the command line, built from what each method declares.

A method declares its options as data (:attr:`fusekit.Fuser.options`, a
tuple of :class:`fusekit.Option`); a method that declares none has the
keyword options of its ``__init__``. From these, ``fusekit fuse`` builds:

``-p KEY=VALUE``
    Any option; the text is parsed by the option's declared type and checked
    against its choices. An unknown key is an error listing the method's
    options.
``--NAME``
    A flag for every option a registered method declares with
    ``flag=True`` (ReFusion's ``--weights``, ``--device``,
    ``--stretch/--no-stretch``). The core names no method: the flags come
    from the plugins installed. A method without the option refuses the
    flag with the same message as an unknown ``-p`` key (a weights file or
    a GPU request that silently did nothing would mislead).
``--task``
    A core option: it describes the *data* (which kind of images these
    are), not a method, so every method takes it. A method that declares a
    ``task`` option gets it; any other ignores it with a one-line note ("focus
    does not use --task"). A method with a ``task`` option and no ``--task``
    gets the task the source folders name
    (:func:`fusekit.datasets.detect_task`), or keeps its default; a note says
    which.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import click

from ..datasets import LAYOUTS, detect_task
from ..errors import ParameterError
from ..interfaces import Fuser, Option

#: Options of ``fusekit fuse`` itself; a method's flag of the same name is left to ``-p``.
CORE_NAMES = frozenset({"output", "method", "task", "param", "bit_depth", "jobs", "ext", "dask", "max_pixels",
                        "progress", "help"})


def split_param(text: str) -> tuple[str, str]:
    """Split ``KEY=VALUE`` into the option name (hyphens as underscores) and the value text."""
    key, sep, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key:
        raise ParameterError(f"option {text!r} is not KEY=VALUE; write e.g. -p levels=4")
    return key, raw


def parse_param(text: str) -> tuple[str, Any]:
    """Parse ``KEY=VALUE`` without a declaration: VALUE as a Python literal (number, bool, None) or text."""
    key, raw = split_param(text)
    return key, Option(key).parse(raw)


def _no_option(cls: type[Fuser], key: str, how: str = "") -> ParameterError:
    return ParameterError(f"method {cls.name!r} has no option {key}{how}; its options are: "
                          f"{cls.options_text()} ('fusekit info {cls.name}' describes them)")


def flag_name(option: str) -> str:
    """The ``--flag`` of an option name (``chunk_pixels`` -> ``--chunk-pixels``)."""
    return "--" + option.replace("_", "-")


def method_flags(fusers: Iterable[type[Fuser]]) -> list[click.Option]:
    """One click option per option name that some method declares with ``flag=True``.

    A bool option becomes ``--NAME/--no-NAME``; any other takes its value as
    text, parsed later by the chosen method's declaration. Names of ``fusekit
    fuse``'s own options are skipped (``-p`` still reaches them). Every flag
    defaults to ``None``: "not given", the method keeps its default.
    """
    by_name: dict[str, list[tuple[str, Option]]] = {}
    for cls in fusers:
        try:
            declared = cls.declared_options()
        except Exception:  # noqa: BLE001 - a broken declaration is reported when that method is used
            continue
        for opt in declared:
            if opt.flag and opt.name not in CORE_NAMES:
                by_name.setdefault(opt.name, []).append((cls.name, opt))
    flags = []
    for name, users in sorted(by_name.items()):
        first = users[0][1]
        if len(users) == 1:
            text = f"{first.help.rstrip('.')}; a {users[0][0]} option (default: {first.default!r})."
        else:
            defaults = ", ".join(f"{opt.default!r} for {method}" for method, opt in users)
            text = f"{first.help.rstrip('.')}; an option of {len(users)} methods (default: {defaults})."
        if all(opt.type is bool for _, opt in users):
            decl = f"{flag_name(name)}/--no-{name.replace('_', '-')}"
            flags.append(click.Option([decl, name], default=None, help=text))
        else:
            flags.append(click.Option([flag_name(name), name], default=None, metavar=first.type_name.upper(),
                                      help=text))
    return flags


def _folder_name(path: Path) -> str:
    """The folder a source names: itself if a folder, else the folder holding the file."""
    path = Path(path).resolve()
    return path.name if path.is_dir() else path.parent.name


def _default_of(cls: type[Fuser], option: str) -> Any:
    return next(o.default for o in cls.declared_options() if o.name == option)


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


def meant_for(cls: type[Fuser], task: str | None) -> str | None:
    """``"it is meant for mfif"`` when ``task`` is not one the method is meant for, else ``None``.

    The same words end ``fuse``'s note on an ignored ``--task`` and ``eval``'s
    note on a method scored on another task's data.
    """
    if task is None or task in cls.tasks:
        return None
    return f"it is meant for {', '.join(cls.tasks)}"


def method_options(cls: type[Fuser], params: Sequence[str], flags: dict[str, Any],
                   sources: Sequence[Path], note: Callable[[str], None]) -> dict[str, Any]:
    """The options to create ``cls`` with, from ``-p`` values, the flags and the sources.

    Parameters
    ----------
    cls : Fuser subclass
    params : sequence of str
        ``KEY=VALUE`` texts of ``-p``.
    flags : dict
        Option name -> flag value (``None``: not given): ``task`` and the
        flags of :func:`method_flags`. A flag and a ``-p`` value for the same
        option must agree.
    sources : sequence of Path
        The command's sources, for task inference.
    note : callable
        Receives one-line notes for the user.

    Returns
    -------
    dict
        Options for :meth:`fusekit.Fuser.create`, parsed by their declared types.

    Raises
    ------
    ParameterError
        An option the method lacks (the message lists its options), a
        value its declaration refuses, or a flag and ``-p`` that disagree.
    """
    declared = {o.name: o for o in cls.declared_options()}
    options: dict[str, Any] = {}
    for text in params:
        key, raw = split_param(text)
        if key not in declared:
            raise _no_option(cls, key)
        try:
            options[key] = declared[key].parse(raw)
        except ParameterError as exc:
            raise ParameterError(f"method {cls.name!r}: {exc}") from None
    for key, value in flags.items():
        if value is None:
            continue
        if key not in declared:
            if key == "task":
                suits = meant_for(cls, value)
                note(f"{cls.name} does not use --task; --task {value} ignored" + (f" ({suits})" if suits else ""))
                continue
            raise _no_option(cls, key, f" ({flag_name(key)})")
        opt = declared[key]
        parsed = opt.parse(value) if isinstance(value, str) else opt.check(value)
        if key in options and options[key] != parsed:
            raise ParameterError(f"-p {key}={options[key]} and {flag_name(key)} {value} disagree; give only one "
                                 f"of them")
        options[key] = parsed
    if "task" in declared and "task" not in options:
        task = infer_task(cls, sources, note)
        if task is not None:
            options["task"] = task
    return options
