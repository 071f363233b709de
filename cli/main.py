"""The ``edgegen`` command: a click group whose subcommands load only when called.

Each subcommand is a module of this package (``edgegen train`` is :mod:`edgegen.cli.train`), a
thin click command that builds the library's objects and prints what they return. Loading them
lazily keeps ``edgegen --help`` working with only ``edgegen[cpu]`` installed, and turns a missing
extra into one line that says what to install.

Exit codes: 0 success; 1 a check ran and failed; 2 a usage or input error (one line on stderr).
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
import warnings
from typing import Any

import click

from edgegen.runtime import __version__
from edgegen.runtime.errors import EdgegenError

# name -> (module, attribute, extra that provides its imports, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str, str, str]] = {
    "train": ("edgegen.cli.train", "train", "train", "Train a residual generator on photos."),
    "export": (
        "edgegen.cli.export",
        "export",
        "train",
        "Export a checkpoint to verified ONNX (fp32, fp16, int8).",
    ),
    "run": ("edgegen.cli.run", "run", "cpu", "Run a model on image files."),
    "verify": (
        "edgegen.cli.verify",
        "verify",
        "cpu",
        "Verify a model on this machine against its golden samples.",
    ),
    "compare": (
        "edgegen.cli.compare",
        "compare",
        "cpu",
        "Compare ONNX variants with a reference: error, PSNR/SSIM, latency.",
    ),
    "bench": (
        "edgegen.cli.bench",
        "bench",
        "cpu",
        "Latency, throughput and GFLOP/s of exported models.",
    ),
    "pipeline": ("edgegen.cli.pipeline", "pipeline", "train", "Train, export, verify, compare."),
    "models": ("edgegen.cli.models", "models", "cpu", "List the shipped pretrained models."),
    "web": (
        "edgegen.cli.web",
        "web",
        "cpu",
        "Pack models into a web page that runs them on onnxruntime-web.",
    ),
    "serve": ("edgegen.cli.web", "serve", "cpu", "Serve a page written by `edgegen web`."),
}


def extra_for(module: str | None, default: str) -> str:
    """The extra that provides ``module``: onnxruntime comes with cpu (or gpu), the rest with
    ``default``."""
    return "cpu" if (module or "").split(".")[0] == "onnxruntime" else default


class MissingExtra(EdgegenError):
    """A subcommand whose optional dependencies are not installed."""


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(SUBCOMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in SUBCOMMANDS and cmd_name not in self.commands:
            return _Placeholder(cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        # click suggests only among the commands registered up front (none here: they are
        # lazy), and only since 8.4; a mistyped command gets its "Did you mean" here. A name
        # that looks like an option (not alphanumeric first) is left to click, which parses it.
        name = click.utils.make_str(args[0]) if args else ""
        if (
            name[:1].isalnum()
            and not ctx.resilient_parsing
            and self.get_command(ctx, name) is None
            and ctx.token_normalize_func is None
        ):
            raise click.UsageError(no_such_command(name, self.list_commands(ctx)), ctx)
        return super().resolve_command(ctx, args)


def no_such_command(name: str, commands: list[str]) -> str:
    """click's wording for an unknown command, with the closest commands as its suggestions
    (worded as click words them for a mistyped option)."""
    message = f"No such command {name!r}."
    close = difflib.get_close_matches(name, commands)
    if len(close) == 1:
        return f"{message} Did you mean {close[0]!r}?"
    if close:
        return f"{message} (Did you mean one of: {', '.join(map(repr, close))}?)"
    return message


class _Placeholder(click.Command):
    """Stands in for a lazy subcommand: short help without importing, the real one on demand."""

    def __init__(self, name: str) -> None:
        module, attr, extra, short = SUBCOMMANDS[name]
        super().__init__(name, help=short, short_help=short, add_help_option=False)
        self._target = (module, attr, extra)
        self.context_settings = {"ignore_unknown_options": True, "allow_extra_args": True}
        self.params = [click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)]

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Verbatim, "--" included: click's parser would drop it, and then `edgegen run -o out
        # -- -x.png` would read the file name -x.png as an option of the real command.
        ctx.params["args"] = tuple(args)
        return []

    def _load(self) -> click.Command:
        module, attr, extra = self._target
        try:
            cmd = getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as exc:
            missing = exc.name or "a dependency"
            raise MissingExtra(
                f"'edgegen {self.name}' needs {missing}, which is not installed: "
                f"pip install 'edgegen[{extra_for(exc.name, extra)}]'"
            ) from None
        assert isinstance(cmd, click.Command)
        return cmd

    def invoke(self, ctx: click.Context) -> Any:
        real = self._load()
        quiet_onnxruntime()
        warnings.showwarning = _one_line_warning
        args = list(ctx.params.get("args", ()))
        with real.make_context(self.name, args, parent=ctx.parent) as sub_ctx:
            return real.invoke(sub_ctx)


def _one_line_warning(message: Any, category: Any, *_args: Any, **_kwargs: Any) -> None:
    """A warning on the command line is one line, as errors are (no source line under it)."""
    click.echo(f"edgegen: warning: {message}", err=True)


def quiet_onnxruntime() -> None:
    """Create onnxruntime's process environment with its own stderr silenced, and keep its
    process-wide logger to errors. When the user's home is not writable (a service account,
    `nobody`), onnxruntime prints a warning of its own as it starts ("Failed to persist
    telemetry device ID"): a second stderr line beside edgegen's one, from no fault of the
    user's. Only the command line does this; an app that embeds the runtime keeps onnxruntime
    as it configured it."""
    try:
        saved = os.dup(2)
    except OSError:  # pragma: no cover - no stderr at all
        return
    try:
        with open(os.devnull, "wb") as sink:
            os.dup2(sink.fileno(), 2)
        try:
            import onnxruntime
        except ImportError:  # the command will say what to install
            return
        onnxruntime.set_default_logger_severity(3)
        onnxruntime.get_available_providers()  # creates the environment, with the warning
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgegen")
def cli() -> None:
    """edgegen: train residual image generators, export them to ONNX, run and compare them.

    \b
    Exit codes:
      0  success
      1  a check ran and failed (verification, a threshold)
      2  a usage or input error, reported as one line
    """


def main(argv: list[str] | None = None) -> None:
    """Console entry point: every error is one line on stderr with its exit code, no traceback."""
    try:
        # Without standalone mode click returns a command's return value (our commands return
        # their exit code, or None for success) and the exit code of --help/--version.
        rc = cli.main(args=argv, prog_name="edgegen", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:  # click's name for Ctrl-C (KeyboardInterrupt) inside a command
        click.echo("edgegen: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"edgegen: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except EdgegenError as exc:
        click.echo(f"edgegen: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except ModuleNotFoundError as exc:  # a lazy import inside a command: name what to install
        click.echo(
            f"edgegen: error: {exc.name or 'a dependency'} is not installed: "
            f"pip install 'edgegen[{extra_for(exc.name, 'train')}]'",
            err=True,
        )
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("edgegen: interrupted", err=True)
        sys.exit(130)
    except MemoryError as exc:  # a huge --sizes, an image too large for this machine
        text = str(exc).strip()
        reason = f": {text.splitlines()[0]}" if text else ""
        click.echo(f"edgegen: error: out of memory{reason}", err=True)
        sys.exit(2)
    except OSError as exc:  # a full disk, a vanished folder: the environment, not a bug
        where = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"edgegen: error: {where}{exc.strerror or exc}", err=True)
        sys.exit(2)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":  # pragma: no cover - `python -m edgegen.cli.main`
    main()
