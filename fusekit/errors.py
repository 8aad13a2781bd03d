"""Exceptions raised by fusekit.

Every error a user can cause derives from :class:`FusekitError` and from the
builtin exception that matches its meaning, so ``except ValueError`` keeps
working for callers that do not know fusekit. Messages say what was expected,
what came, and how to fix it; the command line prints them as one line.
"""

from __future__ import annotations

import difflib
from typing import Iterable


class FusekitError(Exception):
    """Base class of every error fusekit raises on purpose.

    Attributes
    ----------
    exit_code : int
        Exit status of the command line for this error: 1, or 2 for usage errors.
    """

    exit_code: int = 1


class UsageError(FusekitError, ValueError):
    """A command-line option or argument cannot be used as given (exit status 2).

    Found before any work is done: an unknown output format, an option
    value outside its range, an output path that cannot be written.
    """

    exit_code = 2


class InputError(FusekitError, ValueError):
    """An input image, pair or folder cannot be used (missing, unreadable, mismatched)."""


class ParameterError(FusekitError, ValueError):
    """A method option is unknown or outside its valid range."""


class WeightsError(FusekitError, ValueError):
    """A weights file is missing, corrupt, or not compatible with the network."""


class PluginError(FusekitError, RuntimeError):
    """A plugin could not be loaded or registered something invalid."""


class UnknownNameError(FusekitError, LookupError):
    """A method, metric, profile or other name is not registered.

    Parameters
    ----------
    kind : str
        What was looked up, e.g. ``"method"`` or ``"metric"``.
    name : str
        The name that was asked for.
    known : iterable of str
        The names that exist; close ones are suggested in the message.
    """

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        self.kind = kind
        self.name = name
        self.known = sorted(known)
        close = difflib.get_close_matches(name, self.known, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else (
            f"known: {', '.join(self.known) if self.known else '(none)'}"
        )
        super().__init__(f"unknown {kind} {name!r}; {hint}")

    def __str__(self) -> str:  # LookupError would otherwise quote the message
        return self.args[0]


def one_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, for per-item failure lists.

    fusekit's own errors are shown as they are (they already name the file
    and the fix); any other exception is prefixed with its type.
    """
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text if isinstance(exc, FusekitError) else f"{type(exc).__name__}: {text}"
