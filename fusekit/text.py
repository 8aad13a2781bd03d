"""Small helpers for the text fusekit shows to users."""

from __future__ import annotations

__all__ = ["count"]


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun`` with the right number: ``"1 image"``, ``"3 images"``, ``"0 failures"``.

    Parameters
    ----------
    n : int
    noun : str
        Singular form.
    plural : str, optional
        Plural form when it is not ``noun + "s"``.
    """
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"
