"""``fusekit eval``: score fused images of a dataset with the fusion metrics."""

from __future__ import annotations

from pathlib import Path
import click

from ..interfaces import TASKS
from ..text import count
from . import CliState, echo_error
from .jobs import jobs_option
from .limits import max_pixels_option

_FORMATS = ("table", "csv", "json", "markdown", "latex")


def _split(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [t.strip() for t in text.split(",") if t.strip()]


def _list_metrics(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """Remember ``--list-metrics``; the listing runs once ``--profile`` is known too."""
    if not value or ctx.resilient_parsing:
        return
    ctx.meta["fusekit.list_metrics"] = True
    if "fusekit.profile" in ctx.meta:
        _print_metric_list(ctx)


def _profile_option(ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """Remember ``--profile`` (eager, so ``--list-metrics --profile P`` sees it in any order)."""
    if ctx.resilient_parsing:
        return value
    ctx.meta["fusekit.profile"] = value
    if ctx.meta.get("fusekit.list_metrics"):
        _print_metric_list(ctx)
    return value


def _print_metric_list(ctx: click.Context) -> None:
    """Print the metrics (unit, direction, reference) and profiles, or one profile's conventions; exit.

    Without ``--profile``: one line per metric and one per profile. With
    it: per metric the conventions that profile uses (log base, window,
    data range, sources, colour, border rule, the code it reproduces) and
    the paper, from :mod:`fusekit.metrics.conventions`, the data that
    ``docs/metric_conventions.md`` is generated from.
    """
    from click.core import ParameterSource

    from ..metrics import PROFILES, compiled
    from ..metrics.catalog import BUILTIN_ORDER
    from ..metrics.compute import list_metrics, resolve_metrics
    from ..metrics.profiles import get_profile

    state = ctx.find_object(CliState)
    host = state.host if state else None
    metrics = resolve_metrics(None, host)
    metrics += [m for m in list_metrics(host) if m.on_request]  # listed too, computed only when named
    profile = ctx.meta["fusekit.profile"]
    if ctx.get_parameter_source("profile") in (ParameterSource.DEFAULT, None):
        width = max(len(m.name) for m in metrics)
        for m in metrics:
            per_profile = {p: m.unit_for(p) or "no unit" for p in PROFILES}
            units = (", ".join(f"{p}: {u}" for p, u in per_profile.items())
                     if len(set(per_profile.values())) > 1 else (m.unit or "no unit"))
            named = " (only when named in --metrics)" if m.on_request else ""
            click.echo(f"{m.name.ljust(width)}  {m.arrow}  {m.full_name} [{units}]; {m.reference}{named}")
        click.echo("")
        for p in PROFILES.values():
            click.echo(f"profile {p.name}: {p.summary}")
        click.echo("(--list-metrics --profile P shows each metric's conventions under profile P)")
    else:
        from ..metrics.conventions import format_conventions

        prof = get_profile(profile)  # unknown name: one-line error with close names
        click.echo(format_conventions(prof.name), nl=False)
        plugin = [m for m in metrics if m.name not in BUILTIN_ORDER and prof.defines(m.name)]
        if plugin:
            click.echo("\nplugin metrics (conventions in their own documentation):")
            for m in plugin:
                click.echo(f"{m.name} {m.arrow} {m.full_name} [{m.unit_for(prof.name) or 'no unit'}]; "
                           f"{m.reference}")
    click.echo(compiled.status())
    ctx.exit(0)


@click.command("eval")
@click.option("--list-metrics", is_flag=True, expose_value=False, is_eager=True, callback=_list_metrics,
              help="List the metrics (unit, direction, reference) and profiles, then exit; with "
                   "--profile P, the conventions P uses for each metric (log base, window, data "
                   "range, sources, colour, border rule) and its paper.")
@click.argument("dataset", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--fused", "fused_dirs", multiple=True,
              type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Folder of fused images named like the sources (any extension); repeatable. "
                   "Scores any tool's output; the folder name labels the column (default: none; give "
                   "--fused or --method).")
@click.option("-m", "--method", "methods", multiple=True,
              help="Fusion method to run and score; repeatable. Outputs are cached, so a rerun "
                   "only fuses what is missing (default: none; give --method or --fused).")
@click.option("--task", type=click.Choice(TASKS), default=None,
              help="Task for methods with task-specific weights (default: from the sub-folders).")
@click.option("--sources", default=None, metavar="X,Y",
              help="Source sub-folders in order (default: ir,vi | ct|pet|spect,mri | a,b | under,over).")
@click.option("--metrics", default=None, metavar="NAMES",
              help="Comma-separated metrics, e.g. en,sd,mi,ssim (default: all).")
@click.option("--profile", default="standard", show_default=True, is_eager=True, callback=_profile_option,
              help="Metric conventions: standard (textbook), cddfuse (CDDFuse's Evaluator.py), vifb "
                   "(VIFB's MATLAB metrics) or ivif_zoo (IVIF_ZOO's Python SSIM, PSNR, VIF, Nabf); "
                   "see --list-metrics --profile P.")
@click.option("--weights", default=None, metavar="VARIANT|FILE",
              help="Weights for the learned methods given with --method: a shipped variant name "
                   "('fusekit info refusion' lists them, e.g. learned) or a file (e.g. your own "
                   "'fusekit train' output; default: each method's default shipped weights).")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Option for the methods given with --method that accept it; repeatable "
                   "(default: each method's own values).")
@click.option("-f", "--format", "fmt", type=click.Choice(_FORMATS), default=None,
              help="Report format for -o (default: from its extension: .csv .json .md .tex) or, "
                   "without -o, printed instead of the table; csv, json and markdown hold per-image "
                   "rows, latex the summary for a paper.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the report to this file: per-image rows (image, method, one column per "
                   "metric) for .csv/.json/.md, the summary table for .tex (default: no file; the "
                   "summary table is printed).")
@click.option("--report", "html_report", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Also write a self-contained HTML report here: summary table, a chart per metric, "
                   "labelled contact sheets with enlarged details, per-image table, failures, and the "
                   "run's profile, conventions and methods (default: no HTML report).")
@click.option("--report-scenes", type=click.IntRange(min=0), default=12, show_default=True,
              help="Most scenes drawn as contact sheets in --report (spread evenly over the sorted "
                   "names; 0: none), so that large datasets keep the file small.")
@jobs_option("auto", "scenes")
@click.option("--dask", "dask_address", default=None, metavar="ADDRESS",
              help="Run the work on a Dask cluster: a scheduler address (tcp://host:8786; workers "
                   "must see the same paths), or 'local' for -j worker processes on this machine. "
                   "Needs pip install 'fusekit[dask]' (default: no cluster; -j processes here).")
@click.option("--cache", "cache_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Cache folder for fused images produced by --method "
                   "(default: $FUSEKIT_CACHE_DIR or ~/.cache/fusekit). Entries follow the sources' "
                   "content and order, the options, the weights file and the fusekit version; delete "
                   "it after changing a plugin's code.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr (default: when stderr is a terminal).")
@max_pixels_option
@click.pass_obj
def eval_command(state: CliState, dataset: Path, fused_dirs: tuple[Path, ...],
                 methods: tuple[str, ...], task: str | None, sources: str | None,
                 metrics: str | None, profile: str, fmt: str | None, output: Path | None,
                 jobs: int, cache_dir: Path | None, progress: bool | None,
                 weights: str | None = None, params: tuple[str, ...] = (),
                 dask_address: str | None = None, html_report: Path | None = None,
                 report_scenes: int = 12) -> None:
    """Score fused images of DATASET with fusion metrics.

    DATASET holds one sub-folder per source with files that share names:
    ir/ vi/, ct|pet|spect/ mri/, a/ b/ or under/ over/ (in that source order).

    \b
    Examples:
      fusekit eval data/ivif/tno/test --method average --method max
      fusekit eval data/ivif/tno/test --fused results/mymethod --metrics en,sd,mi,ssim
      fusekit eval data/mif/harvard_mri_pet/test -m refusion --profile cddfuse -o pet.csv -j 2
      fusekit eval data/ivif/roadscene/test -m average -m max --dask tcp://scheduler:8786
      fusekit eval data/ivif/tno/test -m refusion -m max --profile cddfuse -o table.tex
      fusekit eval data/ivif/tno/test -m average -m max --report tno.html

    Every metric is computed on luminance (BT.601 Y) on a 0-255 scale. The
    table shows mean ± std over images; exit status 1 if any image failed.
    """
    from ..evaluation import evaluate
    from ..metrics.compute import resolve_metrics
    from ..metrics.profiles import get_profile
    from .memory import keep_freed_memory

    keep_freed_memory()
    host = state.host if isinstance(state, CliState) else None
    if output is not None:                    # a bad -o fails now, not after all the scoring
        from ..errors import ParameterError, UsageError
        from ..evaluation.report import report_format
        from ..guard import check_writable

        try:
            fmt = report_format(output, fmt)
        except ParameterError as exc:
            raise UsageError(str(exc)) from None
        check_writable(output)
    if html_report is not None:               # an unwritable --report fails now too
        from ..errors import UsageError
        from ..guard import check_writable, same_path

        if output is not None and same_path(output, html_report):
            raise UsageError(f"{html_report}: -o and --report name the same file; give them different names")
        check_writable(html_report, option="--report")
    get_profile(profile)                      # unknown names fail before any work
    resolve_metrics(_split(metrics), host)
    if not fused_dirs and not methods:
        raise click.UsageError("give fused images with --fused DIR or methods to run with --method NAME")
    method_arg = _methods_with_options(state, methods, params, weights)
    from ..evaluation.dataset import find_dataset

    data = find_dataset(dataset, _split(sources))  # a bad dataset fails at once, before any fusing
    _note_unsuited_methods(state, methods, task or data.task, dataset if task is None else None)
    if isinstance(method_arg, dict):  # a bad --weights or -p value fails now, not once per image
        _check_method_options(state, method_arg, task or data.task)

    def run(executor=None):
        return evaluate(dataset, fused=list(fused_dirs) or None, methods=method_arg,
                        sources=_split(sources), metrics=_split(metrics), profile=profile,
                        cache_dir=cache_dir, task=task, jobs=jobs, executor=executor,
                        progress=progress, host=host)

    if dask_address:
        from ..execution import dask_executor

        with dask_executor(dask_address, workers=jobs) as executor:
            report = run(executor)
    else:
        from ..metrics import compiled

        compiled.warm_up(notify=lambda message: click.echo(message, err=True),  # first run: say why it pauses
                         metrics=_split(metrics), profile=profile)          # only the kernels these metrics use
        report = run()
    if output is not None:
        report.write(output, fmt)
        click.echo(f"wrote {output}", err=True)
        click.echo(report.format_table())
    else:
        click.echo(report.render(fmt or "table"), nl=False)
    if html_report is not None:
        report.write_html(html_report, max_scenes=report_scenes)
        click.echo(f"wrote {html_report}", err=True)
    if report.produced:
        click.echo(f"fused {count(report.produced, 'image')} into the cache", err=True)
    if report.failures:
        click.echo(f"{count(len(report.failures), 'failure')}:", err=True)
        for failure in report.failures:
            echo_error(str(failure))
        raise click.exceptions.Exit(1)


def _note_unsuited_methods(state: CliState, methods: tuple[str, ...], task: str | None,
                           dataset: Path | None) -> None:
    """One note per method run on ``task`` data it is not meant for (as ``fuse`` notes for ``--task``).

    ``dataset`` names the folder the task was read from; ``None`` when ``--task`` gave it.
    """
    from .options import meant_for

    for name in dict.fromkeys(methods):
        suits = meant_for(state.host.fusers.get(name), task)
        if suits:
            where = f"{dataset} is {task} data" if dataset is not None else f"--task {task}"
            click.echo(f"note: {name}: {where}, but {suits}", err=True)


def _check_method_options(state: CliState, chosen: dict[str, dict], task: str | None) -> None:
    """Build and prepare each method with its options once, so that an unknown weights variant, a
    missing weights file or a bad option value is one error before any image is fused."""
    for name, options in chosen.items():
        cls = state.host.fusers.get(name)
        if task is not None and "task" in cls.option_names():
            options = {"task": task, **options}
        cls.create(**options).prepare()


def _methods_with_options(state: CliState, methods: tuple[str, ...], params: tuple[str, ...],
                          weights: str | None):
    """``methods`` as evaluate() takes them: names, or name -> options when options were given.

    Each option goes to the methods that accept it; one that no method accepts
    is an error naming the option.
    """
    from ..errors import ParameterError
    from .fuse import parse_param

    options = dict(parse_param(p) for p in params)
    if weights is not None:
        options["weights"] = str(weights)
    if not methods:
        if options:
            raise ParameterError("--weights and -p apply to methods run with --method; none given")
        return None
    if not options:
        return list(methods)
    chosen: dict[str, dict] = {}
    used: set[str] = set()
    for name in methods:
        accepted = set(state.host.fusers.get(name).option_names())
        chosen[name] = {k: v for k, v in options.items() if k in accepted}
        used |= set(chosen[name])
    unused = sorted(set(options) - used)
    if unused:
        offered = "; ".join(f"{name}: {state.host.fusers.get(name).options_text()}" for name in dict.fromkeys(methods))
        raise ParameterError(f"no method given with --method takes option {', '.join(unused)}; their options are "
                             f"{offered} ('fusekit info METHOD' describes them)")
    return chosen
