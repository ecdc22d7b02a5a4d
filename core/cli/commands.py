"""The ``vwmerge`` command line: merge, check (dry run), inspect, plugins.

Commands are thin: they build a request, call one function of :mod:`vwmerge.engine.pipeline`, and
print. Every problem a user can cause arrives as a :class:`vwmerge.VWMergeError` and leaves as one
line ``Error: <file>: <problem>`` with exit status 1 (``--debug`` adds the traceback); usage
errors exit 2 as click decides. Log events go to stderr through structlog, command output to
stdout.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import click

from ..errors import VWMergeError
from . import logs

if TYPE_CHECKING:
    from ..engine.pipeline import MergeRequest

# Each command imports the engine (numpy, pluggy, the plugins) inside its body, so that
# `vwmerge --version` and `--help` cost an interpreter and click, nothing more (docs/scale.md).

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_WEIGHTING = (
    "Default weighting (no --weights) is VW's: each model counts in proportion to the weighted "
    "number of labeled examples it was trained on, except that a base learner which stores "
    "per-parameter adaptive sums (gd's default) weights each parameter by those sums; counters "
    "are summed. With --weights W1,W2,... every parameter is exactly W1·θ1 + W2·θ2 + ... (running "
    "maxima and FTRL's recomputed z aside; counters are still summed), the weights normalized to "
    "sum 1 unless --no-normalize."
)


class CliState(NamedTuple):
    """What the group's options tell the commands (a NamedTuple: attrs would cost start-up)."""

    debug: bool = False
    log_level: str = "info"
    log_format: str = "auto"


@contextlib.contextmanager
def user_errors(ctx: click.Context) -> Iterator[None]:
    """Turn the errors a user can fix into one ``Error:`` line (and a traceback with --debug)."""
    try:
        yield
    except VWMergeError as e:
        _fail(ctx, e, str(e))
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        _fail(ctx, e, f"{where}{e.strerror or e}")


def _fail(ctx: click.Context, exc: BaseException, message: str) -> None:
    state = ctx.find_object(CliState)
    if state is not None and state.debug:
        import traceback  # (its imports cost --help a fifth of its time)

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    raise click.ClickException(" ".join(message.splitlines())) from exc


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from .. import __version__

    click.echo(f"vwmerge {__version__}")
    ctx.exit()


# --------------------------------------------------------------------------------------------
@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit.",
)
@click.option(
    "--log-level",
    type=click.Choice(list(logs.LEVELS)),
    default="info",
    show_default=True,
    envvar="VWMERGE_LOG_LEVEL",
    help="Least severe log event shown on stderr.",
)
@click.option(
    "--log-format",
    type=click.Choice(["auto", "console", "json"]),
    default="auto",
    show_default=True,
    envvar="VWMERGE_LOG_FORMAT",
    help="auto: readable lines on a terminal, JSON lines when stderr is a pipe or a file.",
)
@click.option("--debug", is_flag=True, help="Print the full traceback when a command fails.")
@click.pass_context
def main(ctx: click.Context, log_level: str, log_format: str, debug: bool) -> None:
    """Merge Vowpal Wabbit 9.x binary models into one model that loads in VW.

    \b
      vwmerge merge -o merged.model day1.model day2.model day3.model
      vwmerge check day1.model day2.model          # the plan, nothing written
      vwmerge inspect merged.model
      vwmerge plugins

    By default models are weighted as VW's merge weights them (by the number of examples each
    was trained on, per parameter by gd's adaptive sums when the model stores them); --weights
    sets explicit weights. 'vwmerge merge --help' has the details.

    Log events go to stderr, command output to stdout. Exit status: 0 success, 1 a problem
    with a file or the models (one line naming the file), 2 a usage error.
    """
    ctx.obj = CliState(debug=debug, log_level=log_level, log_format=log_format)


def _start(ctx: click.Context) -> None:
    """Configure logging: the first thing a command does (not the group, so that
    `vwmerge merge --help` does not import structlog)."""
    state = ctx.find_object(CliState)
    if state is not None:
        logs.configure(state.log_level, state.log_format)  # type: ignore[arg-type]


def _plan_options(func: F) -> F:
    """Options shared by ``merge`` and ``check`` (a dry run must accept what a merge accepts)."""
    decorators = [
        click.argument("models", nargs=-1, metavar="[MODEL]..."),
        click.option(
            "--models-from",
            "models_from",
            multiple=True,
            metavar="FILE",
            help="Also merge the models FILE lists, after the MODEL arguments: one path, URL or pattern a "
            "line; blank lines and lines starting with # are skipped; '-' reads standard input. Repeatable.",
        ),
        click.option(
            "-b",
            "--base",
            metavar="BASE",
            help="Base model (as in vw-merge): merge each model's difference from BASE, add the result to "
            "BASE. A pattern must match exactly one file.",
        ),
        click.option(
            "--scale",
            type=float,
            metavar="λ",
            help="With --base: the server step size (federated averaging's server learning rate): the "
            "result is BASE + λ·(merged difference) for the learned parameters; counters and optimizer "
            "statistics are not scaled. Finite, > 0; 1 is plain base mode.",
        ),
        click.option(
            "--force",
            is_flag=True,
            help="With --base: merge a model that has fewer examples than BASE (so it cannot have "
            "continued training from BASE) with a warning instead of an error.",
        ),
        click.option(
            "--weights",
            "weights",
            multiple=True,
            metavar="W[,W...]",
            help="One weight per MODEL, in order: '--weights 3,1', '--weights \"3 1\"' or '--weights 3 --weights 1'.",
        ),
        click.option(
            "--normalize/--no-normalize",
            default=True,
            show_default=True,
            help="Scale the weights to sum 1; turned off, Σ W·θ uses the weights as given.",
        ),
        click.option(
            "--vw-options",
            metavar="'OPTS'",
            help="Options that VW does not keep in the file but that change its layout, applied to "
            "every model (see docs/cli.md).",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document on stdout."),
    ]
    for deco in reversed(decorators):
        func = deco(func)
    return func


def _request(
    ctx: click.Context,
    models: tuple[str, ...],
    models_from: tuple[str, ...],
    output: str | None,
    base: str | None,
    weights: tuple[str, ...],
    normalize: bool,
    vw_options: str | None,
    scale: float | None = None,
    force: bool = False,
) -> MergeRequest:
    if not models and not models_from:
        raise click.UsageError("No models given: name them as MODEL arguments or with --models-from FILE.", ctx)
    from ..engine.pipeline import MergeRequest, parse_weights

    with user_errors(ctx):
        parsed = parse_weights(weights)
    return MergeRequest(
        inputs=models, output=output, base=base, weights=parsed, normalize=normalize, vw_options=vw_options,
        models_from=models_from, scale=scale, force=force,
    )  # fmt: skip


def _check(ctx: click.Context, request: MergeRequest, as_json: bool) -> None:
    from ..engine.pipeline import plan_merge
    from .render import render_plan, to_json

    plan = plan_merge(request)
    click.echo(to_json(plan.to_dict()) if as_json else render_plan(plan))
    if plan.error is not None:
        _fail(ctx, plan.error, str(plan.error))


@main.command("merge", epilog=DEFAULT_WEIGHTING)
@click.option("-o", "--output", metavar="OUT", help="File to write the merged model to (required unless --dry-run).")
@_plan_options
@click.option("--dry-run", is_flag=True, help="Print the plan (like 'vwmerge check'): read no weights, write nothing.")
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Read and reduce the models in this many processes (dask: workers of the local cluster).",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    default=None,
    help="Where to merge: this machine (default), or a dask.distributed cluster (needs vwmerge[dask]).",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Dask scheduler address (tcp://host:8786); implies --executor dask. Without it dask starts a local cluster.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar (there is one only when stderr is a terminal).")
@click.option(
    "--report",
    "report_path",
    metavar="PATH",
    help="Write the provenance report (JSON, docs/report.md) to PATH: inputs, weights, plugins, plan, "
    "SHA-256 of every file. Check it later with 'vwmerge verify PATH'.",
)
@click.option(
    "--allow-nonfinite",
    is_flag=True,
    help="Merge models whose weights hold NaN or ±inf (refused by default: they spread into the merge).",
)
@click.pass_context
def merge_command(
    ctx: click.Context,
    models: tuple[str, ...],
    models_from: tuple[str, ...],
    output: str | None,
    base: str | None,
    scale: float | None,
    force: bool,
    weights: tuple[str, ...],
    normalize: bool,
    vw_options: str | None,
    as_json: bool,
    dry_run: bool,
    jobs: int,
    executor: str | None,
    scheduler: str | None,
    quiet: bool,
    report_path: str | None,
    allow_nonfinite: bool,
) -> None:
    """Merge MODEL files into one model written to OUT.

    \b
      vwmerge merge -o merged.model day1.model day2.model day3.model
      vwmerge merge -o merged.model --weights 3,1 a.model b.model   # 0.75·a + 0.25·b
      vwmerge merge -o merged.model --base base.model a.model b.model
      vwmerge merge -o merged.model --base base.model --scale 0.5 a.model b.model   # half a round
      vwmerge merge --dry-run a.model b.model
      vwmerge merge -o merged.model --jobs 4 day*.model
      vwmerge merge -o merged.model 'file:///data/day*.model'    # vwmerge expands the pattern
      vwmerge merge -o merged.model --models-from round7.txt     # one path or URL a line
      vwmerge merge -o s3://bucket/merged.model --scheduler tcp://10.0.0.5:8786 's3://bucket/day*.model'

    MODEL, BASE and the lines of a --models-from list may be glob patterns (*, ?, [...], **),
    local or in fsspec URLs; quote them so that vwmerge, not the shell, expands them. A pattern
    becomes its matching files (not directories) sorted by plain string order (day10 before
    day2), and matching nothing is an error; an existing file whose name contains these
    characters is taken as is. The models are the MODEL arguments, then each list's in order.
    --weights must give one weight per model after this expansion. OUT is never expanded.

    -o/--output and -b/--base work as in VW's vw-merge. OUT is written to a temporary file
    beside it and renamed, so a failed merge leaves nothing behind; OUT may not be one of the
    inputs. Models and OUT may be fsspec URLs. The merge holds one model at a time in memory
    (the weight rows are streamed); with --jobs or dask, groups of models are merged in
    parallel and the results equal the sequential merge within float32 rounding. A summary of
    the time, bytes and memory each phase took is logged at the end.

    --report PATH writes a provenance report: vwmerge's version, the command line, each input's
    size, SHA-256 (taken as the merge reads it), example count and weight, the plan per
    reduction with the plugin's package and version, the output's size and SHA-256, timings and
    peak memory. --json prints the same document on stdout.
    """
    if output is None and not dry_run:
        raise click.UsageError("Missing option '-o' / '--output' (the merged model's file name).", ctx)
    _start(ctx)
    import itertools

    from ..engine.pipeline import check_report_path, run_merge, write_text
    from .render import json_chunks

    request = _request(ctx, models, models_from, output, base, weights, normalize, vw_options, scale, force)
    if dry_run:
        _check(ctx, request, as_json)
        return
    import attrs

    provenance = as_json or report_path is not None
    request = attrs.evolve(
        request, jobs=jobs, executor=executor, scheduler=scheduler, progress=False if quiet else None,
        provenance=provenance,
        allow_nonfinite=allow_nonfinite,
    )  # fmt: skip
    with user_errors(ctx):
        if report_path is not None:
            request = request.expanded()  # (the report may not be any of the files patterns stand for)
            check_report_path(report_path, request)
        report = run_merge(request, argv=getattr(sys, "orig_argv", sys.argv))
        document = report.to_provenance(lazy=True) if provenance else {}  # (streamed: one input's record at a time)
        if report_path is not None:
            write_text(report_path, itertools.chain(json_chunks(document), ["\n"]))
    logs.get_logger().info("merged", **report.log_fields(), **({"report": report_path} if report_path else {}))
    if as_json:
        for piece in json_chunks(document):
            click.echo(piece, nl=False)
        click.echo()


@main.command("check", epilog=DEFAULT_WEIGHTING)
@click.option("-o", "--output", metavar="OUT", help="Also check that OUT could be written (it is not written).")
@_plan_options
@click.pass_context
def check_command(
    ctx: click.Context,
    models: tuple[str, ...],
    models_from: tuple[str, ...],
    output: str | None,
    base: str | None,
    scale: float | None,
    force: bool,
    weights: tuple[str, ...],
    normalize: bool,
    vw_options: str | None,
    as_json: bool,
) -> None:
    """Show what merging MODEL files would do, without doing it (same as merge --dry-run).

    \b
      vwmerge check day1.model day2.model day3.model
      vwmerge check --weights 3,1 --json a.model b.model
      vwmerge check --models-from round7.txt 'extra/*.model'

    Reads each file's header and reduction sections but not its weight rows (only the last
    row's index, checked against 2^bits), so it takes the same short time for any model size.
    Prints the stack (top to bottom) with the plugin that merges each reduction, what will only
    warn and why, each model's weight, and the first error. Exits 1 when the merge would fail
    on anything those decide (files, headers, sections, compatibility, weights, base, plugins,
    OUT); damage inside the weight rows and write errors show only in the merge ('vwmerge
    inspect' reads every row).
    """
    _start(ctx)
    request = _request(ctx, models, models_from, output, base, weights, normalize, vw_options, scale, force)
    _check(ctx, request, as_json)


@main.command("verify")
@click.argument("report", metavar="REPORT")
@click.option("--inputs", "with_inputs", is_flag=True, help="Also re-hash every input and the base the report names.")
@click.pass_context
def verify_command(ctx: click.Context, report: str, with_inputs: bool) -> None:
    """Check files against a provenance report written by 'vwmerge merge --report'.

    \b
      vwmerge verify merged.report.json
      vwmerge verify --inputs merged.report.json

    Re-reads the merged model the report names (and with --inputs every input and the base) and
    compares its size and SHA-256 with the report. Exit 0 when all match; exit 1 with one line
    naming the first file that differs, or saying what is wrong with the report. Relative paths
    are taken relative to the directory the merge ran in (the report's "cwd").
    """
    _start(ctx)
    from ..engine.report import read_report, verify

    with user_errors(ctx):
        doc = read_report(report)
        mismatch = verify(doc, inputs=with_inputs)
    if mismatch is not None:
        _fail(ctx, VWMergeError(str(mismatch)), str(mismatch))
    checked = 1 + (len(doc["inputs"]) + (doc.get("base") is not None) if with_inputs else 0)
    click.echo(f"OK: {checked} file{'s match' if checked != 1 else ' matches'} {report}")


@main.command("inspect")
@click.argument("model", metavar="MODEL")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of the text report.")
@click.option(
    "--vw-options", metavar="'OPTS'", help="Options VW does not store in the file but which change its layout."
)
@click.option("--allow-nonfinite", is_flag=True, help="Describe a model whose weights hold NaN or ±inf.")
@click.pass_context
def inspect_command(
    ctx: click.Context, model: str, as_json: bool, vw_options: str | None, allow_nonfinite: bool
) -> None:
    """Describe a model file: header, reduction stack, counters and weights.

    \b
      vwmerge inspect merged.model
      vwmerge inspect merged.model --json | jq .weights

    Shows the header (VW version, id, bits, labels, options, checksum), each reduction from top
    to bottom with the plugin (and package) that reads and merges it and a summary of its state,
    the learner's counters, and per-column weight statistics. Reading a model also validates it:
    a damaged file fails with one line saying what is wrong.
    """
    _start(ctx)
    from ..engine.pipeline import inspect_model
    from .render import render_inspect, to_json

    with user_errors(ctx):
        doc = inspect_model(model, vw_options=vw_options, allow_nonfinite=allow_nonfinite)
    click.echo(to_json(doc) if as_json else render_inspect(doc))


@main.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of the table.")
@click.pass_context
def plugins_command(ctx: click.Context, as_json: bool) -> None:
    """List the installed plugins, the hooks they implement and the reductions they own.

    \b
      vwmerge plugins
      vwmerge plugins --json

    Plugins come from the 'vwmerge' entry-point group, vwmerge's own included. A plugin from
    another package that declares a built-in reduction overrides it; overrides are listed.
    """
    _start(ctx)
    from ..contract.registry import default_registry
    from .render import plugins_document, render_plugins, to_json

    with user_errors(ctx):
        registry = default_registry()
    doc = plugins_document(registry.plugins(), registry.overrides, registry.broken)
    click.echo(to_json(doc) if as_json else render_plugins(doc))
