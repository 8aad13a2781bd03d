"""Plugin manager: loads built-in and third-party plugins, isolating failures.

Built-in methods live in their own packages (``fusekit_classic``,
``fusekit_refusion``) and register through the same hooks as any third-party
plugin. Third-party plugins are found through the entry-point group
``fusekit``. A plugin that fails to import, raises in a hook, or registers a
name another plugin already owns is *recorded* (see :attr:`PluginInfo.error`)
and contributes nothing; the others load normally. ``strict=True`` (or the
environment variable ``FUSEKIT_STRICT_PLUGINS=1``) turns such a failure into
a :class:`~fusekit.errors.PluginError`.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import pluggy

from . import hookspecs
from .errors import PluginError
from .registry import Entry, Registry

#: Modules of the plugins that ship with fusekit, loaded before entry points.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "fusekit.metrics.plugin",
    "fusekit.training.plugin",
    "fusekit_classic.plugin",
    "fusekit_refusion.plugin",
)

#: hook name -> (registry attribute, noun used in messages)
_REGISTER_HOOKS: dict[str, tuple[str, str]] = {
    "register_fusers": ("fusers", "method"),
    "register_loss_proposers": ("loss_proposers", "loss proposer"),
    "register_reconstructors": ("reconstructors", "reconstructor"),
    "register_metrics": ("metrics", "metric"),
}


@dataclass
class PluginInfo:
    """What one plugin is and what it registered.

    Attributes
    ----------
    name : str
        Plugin name (entry-point name, or the module name for built-ins).
    version : str
        Version of the distribution that provides it.
    builtin : bool
        Whether it ships with fusekit.
    registered : dict of str to list of str
        Names registered per kind (``"method"``, ``"metric"``, ...).
    error : str or None
        Why the plugin failed to load or register, if it did.
    """

    name: str
    version: str
    builtin: bool
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    module: Any = None


class PluginHost:
    """The loaded plugins and the registries they filled.

    Attributes
    ----------
    fusers, loss_proposers, reconstructors, metrics : Registry
        Name tables filled by the ``register_*`` hooks.
    plugins : list of PluginInfo
        Every plugin seen, in load order, including failed ones.
    """

    def __init__(self, strict: bool = False) -> None:
        self.strict = strict
        self.pm = pluggy.PluginManager("fusekit")
        self.pm.add_hookspecs(hookspecs)
        self.fusers = Registry("method")
        self.loss_proposers = Registry("loss proposer")
        self.reconstructors = Registry("reconstructor")
        self.metrics = Registry("metric")
        self.plugins: list[PluginInfo] = []

    # -- loading ---------------------------------------------------------
    def add_plugin(self, module: Any, name: str, version: str = "", builtin: bool = False) -> PluginInfo:
        """Register a plugin object and run its ``register_*`` hooks.

        All of a plugin's registrations are staged first and committed only
        if every hook succeeds and no name clashes, so a broken plugin leaves
        nothing half-registered.
        """
        info = PluginInfo(name=name, version=version, builtin=builtin, module=module)
        self.plugins.append(info)
        try:
            self.pm.register(module, name=name)
        except Exception as exc:  # pluggy validation errors (e.g. an argument not named as in the hook), clashes
            return self._fail(info, "cannot register: " + "; ".join(
                line.strip() for line in str(exc).splitlines() if line.strip()))
        unknown = _unknown_hooks(module)
        if unknown:
            self.pm.unregister(module)
            return self._fail(info, unknown)
        staged: list[tuple[Registry, Entry]] = []
        for hook_name, (attr, noun) in _REGISTER_HOOKS.items():
            registry: Registry = getattr(self, attr)
            impl = self._impl_of(hook_name, name)
            if impl is None:
                continue
            names: list[str] = []

            def register(obj: Any, _reg=registry, _names=names, _noun=noun) -> None:
                key = getattr(obj, "name", None)
                if not isinstance(key, str) or not key:
                    raise PluginError(f"{_noun} {obj!r} has no 'name' attribute")
                if key in _reg:
                    raise PluginError(
                        f"{_noun} {key!r} from plugin {name!r} is already registered by plugin "
                        f"{_reg.entry(key).plugin!r}; rename one of them"
                    )
                if key in _names:
                    raise PluginError(f"plugin {name!r} registers {_noun} {key!r} twice")
                if _noun == "method" and hasattr(obj, "declared_options"):
                    obj.declared_options()  # a declared Option that __init__ does not match fails now
                _names.append(key)
                staged.append((_reg, Entry(key, obj, name)))

            try:
                impl.function(register=register)
            except Exception as exc:
                self.pm.unregister(module)
                return self._fail(info, str(exc) if isinstance(exc, PluginError)
                                  else f"{hook_name} raised {type(exc).__name__}: {exc}")
            if names:
                info.registered[noun] = names
        for registry, entry in staged:
            registry.add(entry)
        return info

    def _impl_of(self, hook_name: str, plugin_name: str) -> pluggy.HookImpl | None:
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            if impl.plugin_name == plugin_name:
                return impl
        return None

    def _fail(self, info: PluginInfo, message: str) -> PluginInfo:
        info.error = message
        if self.strict:
            raise PluginError(f"plugin {info.name!r}: {message}")
        return info

    def load_module(self, module_name: str, name: str | None = None, version: str = "",
                    builtin: bool = False) -> PluginInfo:
        """Import ``module_name`` and add it as a plugin; import errors are recorded."""
        name = name or module_name.removesuffix(".plugin")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            info = PluginInfo(name=name, version=version, builtin=builtin)
            self.plugins.append(info)
            return self._fail(info, f"import failed: {type(exc).__name__}: {exc}")
        return self.add_plugin(module, name=name, version=version, builtin=builtin)

    def load_entry_points(self, group: str = "fusekit") -> None:
        """Load every plugin advertised in the entry-point ``group``.

        ``importlib.metadata`` (about 15 ms to import) is used only when
        :func:`may_advertise` finds a distribution that could advertise one.
        """
        if not may_advertise(group):
            return
        import importlib.metadata

        for ep in sorted(importlib.metadata.entry_points(group=group), key=lambda e: e.name):
            if ep.value.split(":")[0] in BUILTIN_PLUGINS:
                continue
            version = ep.dist.version if ep.dist is not None else ""
            try:
                module = ep.load()
            except Exception as exc:
                info = PluginInfo(name=ep.name, version=version, builtin=False)
                self.plugins.append(info)
                self._fail(info, f"import failed: {type(exc).__name__}: {exc}")
                continue
            self.add_plugin(module, name=ep.name, version=version)

    # -- queries ---------------------------------------------------------
    @property
    def failures(self) -> list[PluginInfo]:
        """Plugins that failed to load or register."""
        return [p for p in self.plugins if p.error]

    def add_commands(self, cli: Any) -> None:
        """Let every loaded plugin add CLI commands; failures are recorded."""
        for impl in self.pm.hook.register_commands.get_hookimpls():
            try:
                impl.function(cli=cli)
            except Exception as exc:
                info = next(p for p in self.plugins if p.name == impl.plugin_name)
                self._fail(info, f"register_commands raised {type(exc).__name__}: {exc}")


def _hook_names() -> list[str]:
    return sorted(n for n in dir(hookspecs) if n.startswith("register_") and callable(getattr(hookspecs, n)))


def _unknown_hooks(module: Any) -> str | None:
    """Why ``module`` cannot be a plugin as written, or ``None``: a function marked ``@hookimpl``
    whose name is no hook (a misspelling pluggy accepts silently), or a function named like a hook
    but not marked (a forgotten ``@hookimpl``)."""
    import difflib

    known = _hook_names()
    for attr in sorted(vars(module) if hasattr(module, "__dict__") else ()):
        value = getattr(module, attr, None)
        if not callable(value) or isinstance(value, type):
            continue
        marked = hasattr(value, "fusekit_impl")
        if marked and attr not in known:
            close = difflib.get_close_matches(attr, known, n=1)
            hint = f"did you mean {close[0]}?" if close else "known hooks: " + ", ".join(known)
            return f"{attr} is not a fusekit hook ({hint})"
        if not marked and attr in known and getattr(value, "__module__", None) == getattr(module, "__name__", None):
            return f"{attr} is not marked as a hook implementation; decorate it with @fusekit.hookimpl"
    return None


def may_advertise(group: str) -> bool:
    """Whether any installed distribution may advertise entry points of ``group`` (cheap, conservative).

    Reads the ``entry_points.txt`` of every ``*.dist-info`` and ``*.egg-info``
    folder on ``sys.path``, as :mod:`importlib.metadata` finds them, and
    answers ``False`` only when none of them has a ``[group]`` section
    (compared without case or surrounding spaces). Any
    place it cannot read the way :mod:`importlib.metadata` would (a zip
    archive or egg on the path, a finder of distributions other than the
    standard one) answers ``True``, so that :mod:`importlib.metadata` looks.

    Parameters
    ----------
    group : str
        Entry-point group, e.g. ``"fusekit"``.

    Returns
    -------
    bool
    """
    from importlib.machinery import PathFinder

    for finder in sys.meta_path:
        if hasattr(finder, "find_distributions") and finder is not PathFinder:
            return True
    needle = group.lower()
    for entry in sys.path:
        root = entry or "."
        if not os.path.isdir(root):
            if os.path.exists(root):   # a zip archive: let importlib.metadata read it
                return True
            continue
        if root.lower().endswith(".egg"):
            return True
        try:
            names = os.listdir(root)
        except OSError:
            continue
        for name in names:
            if not name.lower().endswith((".dist-info", ".egg-info")):
                continue
            try:
                with open(os.path.join(root, name, "entry_points.txt"), encoding="utf-8",
                          errors="replace") as handle:
                    if any(_section(line) == needle for line in handle):
                        return True
            except OSError:            # no entry points, or a file-style .egg-info
                continue
    return False


def _section(line: str) -> str | None:
    """The lower-case name of an ``entry_points.txt`` section header line, else ``None``."""
    line = line.strip()
    if line.startswith("[") and line.endswith("]"):
        return line.strip("[]").strip().lower()
    return None


def _fusekit_version() -> str:
    from . import __version__

    return __version__


def build_host(builtins: Iterable[str] = BUILTIN_PLUGINS, entry_points: bool = True,
               extra: Iterable[tuple[Any, str]] = (), strict: bool | None = None) -> PluginHost:
    """Build a :class:`PluginHost`.

    Parameters
    ----------
    builtins : iterable of str
        Module names of built-in plugins to load first.
    entry_points : bool
        Also load third-party plugins from the ``fusekit`` entry-point group.
    extra : iterable of (object, str)
        Additional ``(plugin, name)`` pairs, e.g. a test plugin.
    strict : bool, optional
        Raise on the first plugin failure. Default: the environment variable
        ``FUSEKIT_STRICT_PLUGINS``.
    """
    if strict is None:
        strict = os.environ.get("FUSEKIT_STRICT_PLUGINS", "") not in ("", "0")
    host = PluginHost(strict=strict)
    version = _fusekit_version()
    for module_name in builtins:
        host.load_module(module_name, name=module_name.removesuffix(".plugin"), version=version, builtin=True)
    if entry_points:
        host.load_entry_points()
    for plugin, name in extra:
        host.add_plugin(plugin, name=name)
    return host


_default_host: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host, built on first use."""
    global _default_host
    if _default_host is None:
        _default_host = build_host()
    return _default_host


def warn_failures(host: PluginHost, echo: Callable[[str], None]) -> None:
    """Print one warning line summarising failed plugins, if any."""
    failed = host.failures
    if failed:
        names = ", ".join(p.name for p in failed)
        echo(f"warning: {len(failed)} plugin(s) failed to load ({names}); see 'fusekit plugins'")

