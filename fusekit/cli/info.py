"""``fusekit methods``, ``fusekit info METHOD`` and ``fusekit plugins``: what is installed."""

from __future__ import annotations

import click

from . import CliState


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Plain fixed-width text table (left aligned, two spaces between columns)."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip()
             for row in [header, ["-" * w for w in widths], *rows]]
    return "\n".join(lines)


@click.command("methods")
@click.pass_obj
def methods_command(state: CliState) -> None:
    """List fusion methods: name, tasks, number of inputs, plugin."""
    rows = [[e.name, ",".join(e.obj.tasks), e.obj.inputs_text(), e.plugin, e.obj.summary]
            for e in state.host.fusers]
    click.echo(format_table(["method", "tasks", "inputs", "plugin", "summary"], rows))


@click.command("plugins")
@click.pass_obj
def plugins_command(state: CliState) -> None:
    """List plugins: name, version, what each registered, or why it failed."""
    rows = []
    for info in state.host.plugins:
        if info.error:
            what = f"FAILED: {info.error}"
        else:
            what = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in info.registered.items()) or "-"
        rows.append([info.name, info.version or "?", "built-in" if info.builtin else "external", what])
    click.echo(format_table(["plugin", "version", "kind", "registered"], rows))


@click.command("info")
@click.argument("method")
@click.pass_obj
def info_command(state: CliState, method: str) -> None:
    """Describe METHOD: summary, tasks, inputs, options and the trained weights it ships.

    \b
    Example:
      fusekit info refusion
    """
    cls = state.host.fusers.get(method)  # unknown name: one-line error listing the methods
    entry = next(e for e in state.host.fusers if e.name == method)
    click.echo(f"{method}: {cls.summary or '(no summary)'}")
    click.echo(f"plugin: {entry.plugin}; tasks: {', '.join(cls.tasks)}; inputs: {cls.inputs_text()}")
    declared = cls.declared_options()
    if not declared:
        click.echo("options: (none)")
    else:
        click.echo("\noptions (-p NAME=VALUE; --NAME where marked flag):")
        click.echo(format_table(["name", "type", "default", "choices", "flag", "help"],
                                [[o.name, o.type_name, repr(o.default),
                                  ",".join(map(str, o.choices)) if o.choices else "",
                                  "yes" if o.flag else "", o.help] for o in declared]))
    rows = cls.weight_variants()
    if rows:
        header = list(rows[0])
        click.echo("\nshipped weights (pass --weights VARIANT; the default is used without it):")
        click.echo(format_table(header, [[str(r.get(h, "")) for h in header] for r in rows]))
