"""Write docs/cli.md, the CLI reference, from the click commands' own ``--help``.

    python scripts/gen_cli_reference.py            # (re)write docs/cli.md
    python scripts/gen_cli_reference.py --check    # exit 1 if docs/cli.md is stale (tests do this)

Every subcommand in ``edgegen.cli.main.SUBCOMMANDS`` is loaded for real (so the full help needs
``edgegen[cpu,train]``), and the help is formatted at a fixed width, so the file is the same on
every machine. Exit codes: 0 written or up to date; 1 stale (with ``--check``); 2 a subcommand
could not be loaded.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from pathlib import Path

import click

from edgegen.cli.main import SUBCOMMANDS, cli
from edgegen.runtime.files import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "cli.md"
WIDTH = 78  # what click prints in an 80-column terminal; fixed so the file never varies

HEADER = """\
# edgegen command reference

Generated from each command's `--help` by `python scripts/gen_cli_reference.py` (`make docs`);
a test fails when this file is stale. Exit codes everywhere: 0 success, 1 a check ran and failed,
2 a usage or input error (one line on stderr, no traceback).
"""


def _help(command: click.Command, name: str, parent: click.Context | None) -> str:
    # Built as click builds them on a real call (context_settings, and -h inherited from the
    # root), but without parsing arguments.
    settings = {**command.context_settings, "terminal_width": WIDTH, "max_content_width": WIDTH}
    return command.get_help(click.Context(command, info_name=name, parent=parent, **settings))


def load(name: str) -> click.Command:
    module, attr, _extra, _short = SUBCOMMANDS[name]
    command = getattr(importlib.import_module(module), attr)
    if not isinstance(command, click.Command):
        raise TypeError(f"{module}.{attr} is not a click command")
    return command


def reference() -> str:
    """The whole reference as Markdown: the root group, then each subcommand in name order."""
    settings = {**cli.context_settings, "terminal_width": WIDTH, "max_content_width": WIDTH}
    root = click.Context(cli, info_name="edgegen", **settings)
    names = sorted(SUBCOMMANDS)
    parts = [HEADER, "Commands: " + ", ".join(f"[`{n}`](#edgegen-{n})" for n in names) + ".\n"]
    parts.append(f"## edgegen\n\n```text\n{cli.get_help(root)}\n```\n")
    for name in names:
        parts.append(f"## edgegen {name}\n\n```text\n{_help(load(name), name, root)}\n```\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the CLI reference from --help.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="default: docs/cli.md")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if stale")
    args = parser.parse_args(argv)
    try:
        text = reference()
    except (ImportError, TypeError) as exc:
        print(f"gen_cli_reference: error: cannot load a command: {exc}", file=sys.stderr)
        return 2
    current = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
    if args.check:
        if current == text:
            return 0
        diff = difflib.unified_diff(
            current.splitlines(), text.splitlines(), str(args.out), "from --help", lineterm=""
        )
        print("\n".join(list(diff)[:60]))
        print(f"{args.out} is stale: run `make docs` (python scripts/gen_cli_reference.py)")
        return 1
    if current != text:
        atomic_write_text(args.out, text)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
