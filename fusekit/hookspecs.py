"""The plugin contract: the hooks a fusekit plugin may implement.

A plugin is a module (or any object) with functions decorated by
:data:`fusekit.hookimpl` whose names match the specifications below. fusekit's
own methods are plugins that use exactly these hooks. Third-party plugins are
found through the entry-point group ``fusekit``::

    [project.entry-points.fusekit]
    myplugin = "my_package.plugin"

Hooks are called once, when the plugin manager is built. They only *register*
classes; nothing heavy (no torch import, no weights loading) should happen
inside them.

Every ``register_*`` hook receives a ``register`` callable. Call it once per
object: ``register(MyFuser)``. The object's ``name`` attribute is its key;
registering a name that another plugin already registered, a misspelt hook
name, a hook function without ``@hookimpl`` or a declared option that does
not match ``__init__`` marks the plugin as failed: it contributes nothing,
``fusekit plugins`` says why, every command warns in one line, and the rest
of fusekit works. ``FUSEKIT_STRICT_PLUGINS=1`` makes such a failure raise
:class:`~fusekit.errors.PluginError` instead (with ``fusekit --traceback``:
the full trace, file and line of a plugin that fails to import).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    import click

hookspec = pluggy.HookspecMarker("fusekit")
#: Decorator that marks a plugin function as a hook implementation.
hookimpl = pluggy.HookimplMarker("fusekit")

Register = Callable[[Any], None]


@hookspec
def register_fusers(register: Register) -> None:
    """Register :class:`~fusekit.interfaces.Fuser` subclasses.

    Parameters
    ----------
    register : callable
        ``register(FuserClass)``; the class's ``name`` is the method key used
        by ``fusekit fuse --method NAME`` and :func:`fusekit.fuse`.
    """


@hookspec
def register_loss_proposers(register: Register) -> None:
    """Register :class:`~fusekit.interfaces.LossProposer` subclasses.

    Parameters
    ----------
    register : callable
        ``register(LossProposerClass)``; key is the class's ``name``
        (``fusekit train --loss-proposer NAME``).
    """


@hookspec
def register_reconstructors(register: Register) -> None:
    """Register :class:`~fusekit.interfaces.Reconstructor` subclasses.

    Parameters
    ----------
    register : callable
        ``register(ReconstructorClass)``; key is the class's ``name``.
    """


@hookspec
def register_metrics(register: Register) -> None:
    """Register fusion metrics (:class:`fusekit.metrics.Metric` instances).

    Parameters
    ----------
    register : callable
        ``register(metric)``; key is ``metric.name`` (short, e.g. ``"en"``).
    """


@hookspec
def register_commands(cli: "click.Group") -> None:
    """Add sub-commands to the ``fusekit`` command-line group.

    Parameters
    ----------
    cli : click.Group
        The root group; call ``cli.add_command(command)``.
    """
