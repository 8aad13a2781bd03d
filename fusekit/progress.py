"""Progress bars: one tqdm bar on stderr, shown on a terminal unless asked otherwise.

The one place for the bar and its rule, for :mod:`fusekit.execution` (which
re-exports :class:`Progress`) and for ``eval``'s in-process path
(:mod:`fusekit.evaluation.worker`), which decides by :meth:`Progress.shown`
whether it needs the execution layer at all. Light to import: tqdm is
imported only for a bar that is shown.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable, Sequence

__all__ = ["Progress", "is_terminal"]


@dataclass(frozen=True)
class Progress:
    """A progress bar (tqdm, on stderr): its label, unit, whether shown, and units per item.

    ``show=None`` shows it only on a terminal; ``weight(item)`` is how many
    units an item counts for (default 1).
    """

    desc: str
    unit: str = "item"
    show: bool | None = None
    leave: bool = True
    weight: Callable[[Any], int] | None = None

    def shown(self) -> bool:
        """Whether :meth:`bar` shows a bar: ``show=True``, or ``show=None`` and stderr is a terminal."""
        return not (self.show is False or (self.show is None and not is_terminal(sys.stderr)))

    def bar(self, items: Sequence[Any]) -> Any:
        """A tqdm bar over ``items`` (a context manager), or a stand-in where tqdm would show none.

        A hidden bar does not import tqdm (about 25 ms of CPU: it imports
        ``importlib.metadata`` for its version); scripts and pipes never see one.
        """
        if not self.shown():
            return _NoBar()
        from tqdm import tqdm

        total = sum(map(self.weight, items)) if self.weight else len(items)
        return tqdm(total=total, desc=self.desc, unit=self.unit, file=sys.stderr, leave=self.leave,
                    disable=None if self.show is None else not self.show)

    def units(self, item: Any) -> int:
        """How many units ``item`` counts for."""
        return self.weight(item) if self.weight else 1


class _NoBar:
    """Stands in for a hidden tqdm bar: a context manager whose ``update`` does nothing."""

    def __enter__(self) -> "_NoBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def update(self, n: int = 1) -> None:
        """Nothing to show."""


def is_terminal(stream: Any) -> bool:
    """tqdm's rule for ``disable=None``: a bar only on a terminal (not on a pipe, file or closed stream).

    Parameters
    ----------
    stream : file-like or None

    Returns
    -------
    bool
    """
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # None, no isatty, or a closed stream
        return False
