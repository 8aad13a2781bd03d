"""Plugin loading: built-ins via hooks, a broken plugin, duplicate names, entry points."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

import fusekit
from fusekit import Fuser, hookimpl
from fusekit.errors import PluginError
from fusekit.plugins import build_host

from .conftest import REPO


def make_plugin(name: str, fuser_name: str, fail: bool = False) -> types.SimpleNamespace:
    class Halve(Fuser):
        tasks = ("ivif",)
        summary = "test fuser"

        def fuse(self, sources):
            return (sources[0] * 0.5).astype(np.float32)

    Halve.name = fuser_name

    @hookimpl
    def register_fusers(register):
        if fail:
            raise RuntimeError("boom")
        register(Halve)

    return types.SimpleNamespace(register_fusers=register_fusers, __name__=name)


def test_builtin_plugins_register_through_hooks():
    host = build_host(entry_points=False)
    classic = next(p for p in host.plugins if p.name == "fusekit_classic")
    assert classic.builtin and classic.error is None
    assert "average" in classic.registered["method"]
    assert host.fusers.entry("average").plugin == "fusekit_classic"


def test_broken_plugin_is_recorded_not_fatal():
    host = build_host(entry_points=False, extra=[(make_plugin("bad", "bad-method", fail=True), "bad"),
                                                 (make_plugin("good", "good-method"), "good")])
    bad = next(p for p in host.plugins if p.name == "bad")
    assert "boom" in bad.error
    assert "bad-method" not in host.fusers
    assert "good-method" in host.fusers
    assert "average" in host.fusers


def test_plugin_that_fails_to_import_is_recorded():
    host = build_host(builtins=("fusekit_classic.plugin", "no_such_fusekit_plugin.plugin"),
                      entry_points=False)
    failed = host.failures
    assert [p.name for p in failed] == ["no_such_fusekit_plugin"]
    assert "import failed" in failed[0].error


def test_duplicate_name_names_both_plugins():
    host = build_host(entry_points=False, extra=[(make_plugin("copycat", "average"), "copycat")])
    err = next(p for p in host.plugins if p.name == "copycat").error
    assert "copycat" in err and "fusekit_classic" in err
    assert host.fusers.entry("average").plugin == "fusekit_classic"


def test_strict_mode_raises():
    with pytest.raises(PluginError, match="boom"):
        build_host(builtins=("fusekit_classic.plugin",), entry_points=False, strict=True,
                   extra=[(make_plugin("bad", "x", fail=True), "bad")])


def test_cli_warns_once_about_broken_plugin_and_carries_on(run_cli):
    host = build_host(entry_points=False, extra=[(make_plugin("bad", "x", fail=True), "bad")])
    result = run_cli(["methods"], host=host)
    assert result.exit_code == 0
    assert result.stderr.count("warning:") == 1 and "bad" in result.stderr
    assert "average" in result.stdout
    listing = run_cli(["plugins"], host=host)
    assert "FAILED" in listing.stdout and "boom" in listing.stdout
    assert "warning" not in listing.stderr


def test_plugin_command_hook(run_cli):
    import click

    @hookimpl
    def register_commands(cli):
        @cli.command("hello")
        def hello():
            click.echo("hello from plugin")

    plugin = types.SimpleNamespace(register_commands=register_commands)
    host = build_host(entry_points=False, extra=[(plugin, "greeter")])
    assert run_cli(["hello"], host=host).stdout.strip() == "hello from plugin"


def test_example_plugin_found_through_entry_point(tmp_path, monkeypatch, demo_pair):
    """The example package's entry point is discovered and its fuser works."""
    plugin_src = REPO / "examples" / "fusekit-example-plugin"
    dist = tmp_path / "fusekit_example_plugin-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fusekit-example-plugin\nVersion: 0.1.0\n")
    # the same entry point the example's pyproject declares
    pyproject = (plugin_src / "pyproject.toml").read_text()
    assert '[project.entry-points.fusekit]\nexample = "fusekit_example_plugin.plugin"' in pyproject
    (dist / "entry_points.txt").write_text("[fusekit]\nexample = fusekit_example_plugin.plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(plugin_src))
    host = build_host()
    example = next(p for p in host.plugins if p.name == "example")
    assert example.error is None and example.version == "0.1.0"
    assert host.fusers.entry("local-energy").plugin == "example"
    ir, vi = demo_pair
    fused = fusekit.fuse([ir, vi], method="local-energy", host=host)
    assert fused.shape == vi.shape and fused.dtype == np.float32


def test_import_and_help_do_not_import_torch():
    code = textwrap.dedent("""
        import sys
        import fusekit
        from fusekit.cli import make_cli
        from click.testing import CliRunner
        r = CliRunner().invoke(make_cli(), ["--help"])
        assert r.exit_code == 0, r.output
        fusekit.fuse  # public API present
        print("torch" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _module(name: str, source: str) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(textwrap.dedent(source), module.__dict__)
    return module


def test_a_misspelt_or_unmarked_hook_fails_the_plugin_with_the_fix():
    misspelt = _module("misspelt", """
        from fusekit import hookimpl
        @hookimpl
        def register_fuser(register):
            pass
    """)
    unmarked = _module("unmarked", """
        def register_fusers(register):
            pass
    """)
    host = build_host(builtins=(), entry_points=False, extra=[(misspelt, "misspelt"), (unmarked, "unmarked")])
    errors = {p.name: p.error for p in host.failures}
    assert "register_fuser is not a fusekit hook (did you mean register_fusers?)" in errors["misspelt"]
    assert "decorate it with @fusekit.hookimpl" in errors["unmarked"]


def test_a_wrong_hook_argument_name_is_explained_in_one_line():
    module = _module("wrongarg", """
        from fusekit import hookimpl
        @hookimpl
        def register_fusers(reg):
            pass
    """)
    host = build_host(builtins=(), entry_points=False, extra=[(module, "wrongarg")])
    (info,) = host.failures
    assert "\n" not in info.error and "reg" in info.error and "hookspec" in info.error


def test_a_declared_option_that_init_does_not_match_fails_the_plugin_at_load():
    class Mismatch(Fuser):
        name = "mismatch"
        tasks = ("ivif",)
        summary = "declares k=0.5, takes k=0.4"
        options = (fusekit.Option("k", float, 0.5, "a weight"),)

        def __init__(self, *, k: float = 0.4) -> None:
            super().__init__()
            self.k = k

        def fuse(self, sources):
            return sources[0]

    @hookimpl
    def register_fusers(register):
        register(Mismatch)

    plugin = types.SimpleNamespace(register_fusers=register_fusers, __name__="mismatch")
    host = build_host(builtins=(), entry_points=False, extra=[(plugin, "mismatch")])
    (info,) = host.failures
    assert "0.5" in info.error and "0.4" in info.error
    assert "mismatch" not in host.fusers


def test_a_methods_own_value_check_is_named_after_the_method():
    class Checked(Fuser):
        name = "checked"
        summary = "weight in 0..1"
        options = (fusekit.Option("weight", float, 0.5, "share of the first source"),)

        def __init__(self, *, weight: float = 0.5) -> None:
            super().__init__()
            if not 0 <= weight <= 1:
                raise ValueError(f"weight must be in 0..1, got {weight}")
            self.weight = weight

        def fuse(self, sources):
            return sources[0]

    with pytest.raises(fusekit.errors.ParameterError, match=r"^method 'checked': weight must be in 0\.\.1"):
        Checked.create(weight=1.5)
