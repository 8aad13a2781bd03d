"""``-j/--jobs``: a number of worker processes, or ``auto`` (one per usable core)."""

from __future__ import annotations

from typing import Any

import click

__all__ = ["Jobs", "jobs_option"]


class Jobs(click.ParamType):
    """A positive integer, or ``auto``: the cores this process may use
    (:func:`fusekit.workers.usable_cores`). The runner still starts no more workers than items."""

    name = "N|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif str(value).strip().lower() == "auto":
            from ..workers import usable_cores

            return usable_cores()
        else:
            try:
                number = int(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is neither a whole number nor 'auto'", param, ctx)
        if number < 1:
            self.fail(f"{number} is not a positive number of processes (give 1 or more, or 'auto')", param, ctx)
        return number


def jobs_option(default: str | int, what: str) -> Any:
    """The ``-j/--jobs`` click option with ``default`` (``"auto"`` or a number); ``what`` names the items."""
    return click.option("-j", "--jobs", type=Jobs(), default=default, show_default=True,
                        help=f"Parallel worker processes, or 'auto': one per usable core (never more than "
                             f"the {what}).")
