"""Options shared by the commands that read images: ``--max-pixels``, and clean stops on SIGTERM.

:func:`max_pixels_option` adds ``--max-pixels`` and, for the run of the
command, makes SIGTERM stop it like Ctrl-C (see
:func:`fusekit.workers.sigterm_as_interrupt`).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import click

from ..header import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, max_pixels


@contextmanager
def environment(name: str, value: str) -> Iterator[None]:
    """Set environment variable ``name`` for the duration (worker processes inherit it), then restore it."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _apply(ctx: click.Context, _param: click.Parameter, value: int | None) -> None:
    from ..workers import sigterm_as_interrupt

    if value is not None:
        ctx.with_resource(environment(MAX_PIXELS_ENV, str(value)))
    max_pixels()  # a malformed $FUSEKIT_MAX_PIXELS is a usage error now, not a failure per image
    ctx.with_resource(sigterm_as_interrupt())  # SIGTERM stops the run like Ctrl-C, cleanly


def max_pixels_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a click command with ``--max-pixels N`` (sets ``$FUSEKIT_MAX_PIXELS`` for the run).

    The command also stops cleanly on SIGTERM, as on Ctrl-C.
    """
    return click.option(
        "--max-pixels", type=click.IntRange(min=1), default=None, metavar="N", expose_value=False,
        callback=_apply,
        help=f"Refuse images above N pixels (width x height), read from the file header before decoding "
             f"(default: ${MAX_PIXELS_ENV} or {DEFAULT_MAX_PIXELS:,}).")(command)
