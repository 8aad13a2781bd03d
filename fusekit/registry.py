"""Name -> object tables, remembering which plugin registered each name."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Iterator

from .errors import UnknownNameError

#: Registered class -> name of the plugin that registered it (for messages about its behaviour).
_OWNERS: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()


def owner_of(obj: Any) -> str | None:
    """Name of the plugin that registered ``obj`` (a class, or an instance of one), if known.

    Parameters
    ----------
    obj : object
        A registered class, or an instance of a registered class.

    Returns
    -------
    str or None
        The plugin name given at registration, or ``None`` for an object no
        registry has seen (e.g. a fuser instance built by hand).
    """
    for candidate in (obj, type(obj)):
        try:
            owner = _OWNERS.get(candidate)
        except TypeError:  # not weak-referenceable
            owner = None
        if owner is not None:
            return owner
    return None


@dataclass(frozen=True)
class Entry:
    """One registered object.

    Attributes
    ----------
    name : str
        The key users type.
    obj : object
        The registered class or instance.
    plugin : str
        Name of the plugin that registered it.
    """

    name: str
    obj: Any
    plugin: str


class Registry:
    """A table of named objects of one kind (fusers, metrics, ...).

    Parameters
    ----------
    kind : str
        Singular noun used in messages, e.g. ``"method"``.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def add(self, entry: Entry) -> None:
        """Add ``entry``; the caller has already checked for duplicates."""
        self._entries[entry.name] = entry
        try:
            _OWNERS[entry.obj] = entry.plugin
        except TypeError:  # not weak-referenceable (e.g. a plain function): no owner to name
            pass

    def entry(self, name: str) -> Entry:
        """The entry for ``name``; :class:`UnknownNameError` with suggestions if absent."""
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._entries) from None

    def get(self, name: str) -> Any:
        """The object registered as ``name``."""
        return self.entry(name).obj

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)
