"""``--help`` of every command states every option's default (issue 25, first hour of a new user)."""

from __future__ import annotations

import click
import pytest

from fusekit.cli import all_commands, make_cli

CLI = make_cli()
COMMANDS = all_commands(CLI)


def _options():
    for name, command in sorted(COMMANDS.items()):
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "help" and not param.hidden:
                yield name, command, param


def _undefaulted(value) -> bool:
    return value is None or value == () or value is getattr(click.core, "UNSET", object())


@pytest.mark.parametrize("name,command,param", list(_options()),
                         ids=[f"{n}{'/'.join(p.opts)}" for n, _, p in _options()])
def test_help_states_the_default(name, command, param):
    """A value option (or an on/off pair) shows its default in the rendered --help line: click's
    ``[default: X]``, or help text saying what happens without it ("default: ..."). Plain on-flags
    (off unless given) and required options have nothing to state."""
    if param.required or (param.is_flag and not param.secondary_opts):
        return
    ctx = click.Context(command, info_name=name)
    record = param.get_help_record(ctx)
    assert record is not None
    text = " ".join(record[1].lower().split())
    assert "default" in text, f"fusekit {name} {'/'.join(param.opts)}: --help states no default: {record[1]!r}"
    default = param.get_default(ctx, call=False)
    if not _undefaulted(default) and not callable(default) and param.show_default:
        assert "[default:" in text, f"fusekit {name} {'/'.join(param.opts)}: show_default renders nothing"


def test_the_commands_a_new_user_meets_are_checked():
    assert {"fuse", "eval", "explain", "info", "train"} <= set(COMMANDS)
