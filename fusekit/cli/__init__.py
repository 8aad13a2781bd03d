"""The ``fusekit`` command line.

The click group is built by :func:`make_cli` from a plugin host, so tests can
build one with their own plugins and plugins can add sub-commands through the
``register_commands`` hook. Errors fusekit raises on purpose become one line
on stderr and exit status 1 (2 for usage errors, click's included);
``--traceback`` shows the full trace instead. A closed pipe on stdout
(``fusekit eval ... | head``) ends the command quietly with status 141.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from typing import Any

import click

from .. import __version__
from ..errors import FusekitError
from ..io import FusekitWarning
from ..plugins import PluginHost, get_host, warn_failures


@dataclass
class CliState:
    """What every sub-command gets as ``ctx.obj``."""

    host: PluginHost
    traceback: bool = False


def echo_error(message: str) -> None:
    """Print one error line on stderr."""
    click.echo(f"error: {message}", err=True)


class FusekitGroup(click.Group):
    """A click group that turns fusekit errors into one-line messages.

    Sub-commands named in :attr:`lazy` are imported on first use (``fusekit
    fuse`` does not import what ``train`` needs); the listing and ``--help``
    import them all.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: command name -> (module under fusekit.cli, attribute), imported by :meth:`get_command`
        self.lazy: dict[str, tuple[str, str]] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            command = _optional_command(*self.lazy.pop(cmd_name))
            if command is not None:   # a module left out of this installation: no such command
                self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # one line, like every other error, instead of click's three
            if ctx.params.get("traceback"):
                raise
            path = (exc.ctx or ctx).command_path.split()[1:]  # the program's own name may differ
            if not path and ctx.invoked_subcommand:  # click left the sub-command's context out
                path = [ctx.invoked_subcommand]
            message = " ".join(exc.format_message().split())  # click lists choices on several lines
            echo_error(f"{message} (see '{' '.join(['fusekit', *path])} --help')")
            ctx.exit(exc.exit_code)
        except BrokenPipeError:  # the reader went away (fusekit ... | head): stop quietly, as shell tools do
            _silence_stdout()
            ctx.exit(141)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:  # Ctrl-C: outputs are atomic, so say so and stop
            if ctx.params.get("traceback"):
                raise
            echo_error("interrupted; files already written are complete and no temporary file is left")
            ctx.exit(130)
        except FusekitError as exc:
            if ctx.params.get("traceback"):
                raise
            echo_error(str(exc))
            ctx.exit(exc.exit_code)
        except Exception as exc:  # unexpected: still one line unless asked
            if ctx.params.get("traceback"):
                raise
            echo_error(f"{type(exc).__name__}: {exc} (rerun with --traceback for details)")
            ctx.exit(2)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush cannot fail a second time."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _show_warning(message: Any, category: type, filename: str, lineno: int,
                  file: Any = None, line: Any = None) -> None:
    click.echo(f"warning: {message}", err=True)


def make_cli(host: PluginHost | None = None) -> click.Group:
    """Build the ``fusekit`` click group.

    Parameters
    ----------
    host : PluginHost, optional
        Plugins to use; default: the process-wide host (built-ins plus the
        ``fusekit`` entry-point group).
    """
    host = host if host is not None else get_host()

    @click.group(cls=FusekitGroup, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, prog_name="fusekit")
    @click.option("--traceback", is_flag=True, help="Show full tracebacks on errors.")
    @click.pass_context
    def cli(ctx: click.Context, traceback: bool) -> None:
        """fusekit: fuse infrared-visible, medical, multi-focus and multi-exposure images.

        \b
        Examples:
          fusekit fuse --method refusion --task ivif ir.png vi.png -o fused.png
          fusekit fuse --method average ir/ vi/ -o fused/
          fusekit eval data/ivif/tno/test --method refusion --method average
          fusekit methods
        """
        ctx.obj = CliState(host=host, traceback=traceback)
        catcher = warnings.catch_warnings()
        ctx.with_resource(catcher)
        warnings.simplefilter("always", FusekitWarning)
        warnings.showwarning = _show_warning
        if ctx.invoked_subcommand != "plugins":
            warn_failures(host, lambda line: click.echo(line, err=True))

    from .fuse import make_fuse_command
    from .info import info_command, methods_command, plugins_command

    for command in (make_fuse_command(host), methods_command, info_command, plugins_command):
        cli.add_command(command)
    cli.lazy.update({"eval": ("eval", "eval_command"), "train": ("train", "train_command"),
                     "explain": ("explain", "explain_command")})
    host.add_commands(cli)
    return cli


def all_commands(cli: click.Group) -> dict[str, click.Command]:
    """Every command of ``cli`` by name, the lazily imported ones included."""
    ctx = click.Context(cli, info_name="fusekit")
    found = {name: cli.get_command(ctx, name) for name in cli.list_commands(ctx)}
    return {name: command for name, command in found.items() if command is not None}


def _optional_command(module_name: str, attr: str) -> click.Command | None:
    import importlib

    try:
        module = importlib.import_module(f"{__name__}.{module_name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"{__name__}.{module_name}":
            return None
        raise
    return getattr(module, attr)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    make_cli()(args=argv, prog_name="fusekit")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
