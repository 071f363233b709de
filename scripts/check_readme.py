"""Run every command in README.md and the user guide as written, in order, in a scratch copy of
the repository.

    python scripts/check_readme.py            # every runnable block, as written (trains: slow)
    python scripts/check_readme.py --tiny     # train commands get tiny settings (what tests run)
    python scripts/check_readme.py --list     # what would run, and why the rest would not
    python scripts/check_readme.py --readme X.md   # one file instead

The files are README.md, then the documentation's pages in the order of mkdocs.yml's nav (the
guide's commands use what the README's tour made), all in one scratch copy.

Which fenced blocks run:

- ``sh``, ``bash``, ``shell``: each command (one line; a trailing backslash continues it) runs in
  bash in the scratch copy, with the repository's .venv/bin first on PATH, as after
  ``source .venv/bin/activate``.
- ``python``: the block is saved as a file and run with the venv's python, in the scratch copy.
- any other fence (``text``, a bare fence, ``cpp`` ...): output or another language; never run.

An HTML comment on the line right before a fence (invisible on GitHub) changes that:

- ``<!-- readme-check: skip REASON -->``: never run; the report gives the reason.
- ``<!-- readme-check: slow -->``: run as written, but not with ``--tiny``.
- ``<!-- readme-check: needs MODULE -->``: run only where MODULE imports (e.g. dask).
- ``<!-- readme-check: exit N -->``: the block's commands are expected to exit with N.

With ``--tiny``, ``edgegen train`` commands (also under torchrun), unless they ``--resume``, lose
``--steps``/``--minutes``/``--val-every`` and get the tiny arch, small patches and 4 steps;
``edgegen pipeline`` gets 4 steps, 4 calibration crops and 1 repeat, ``edgegen bench`` 1 round,
``--qat N`` becomes ``--qat 4`` and ``train --qat-from`` 4 steps; every other command runs as
written.

The scratch copy holds the files git tracks or would track (no .venv, runs/ ...), a .venv of
links to this one's (with its own install stamp, so ``make`` never reinstalls from the copy), and
stand-ins for a user's own images: ``photos/`` (five bundled training photos as JPEG, colour
and gray), ``noisy.jpg`` (scikit-image's coffee with sigma = 25 Gaussian noise), ``photo.jpg``
(its rocket) and ``small.png`` (its chelsea, 451x300).

Exit codes: 0 every command that ran succeeded; 1 one failed (each failure is shown with the end
of its output); 2 bad arguments, no README or a malformed marker.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHELL_LANGS = {"sh", "bash", "shell"}
MARKER = re.compile(r"^<!--\s*readme-check:\s*(skip|slow|needs|exit)\b\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(`{3,})\s*([\w+-]*)\s*$")
# --tiny: what each long-running subcommand gets appended, and the options it loses first.
TINY_ARGS = {
    "train": "--arch tiny --patch 32 --batch 2 --workers 0 --steps 4 --val-every 4 --no-progress",
    "pipeline": "--steps 4 --val-every 4 --calib-count 4 --repeats 1 --no-progress",
    "bench": "--rounds 1",
}
DROPPED_IN_TINY = {"--steps", "--minutes", "--val-every", "--calib-count", "--repeats", "--rounds"}
SHRINK = {"--qat": "4"}  # --tiny: these options' values, in any edgegen command
LAUNCHERS = ("edgegen", "edgegen.cli")  # `edgegen X`, `... -m edgegen.cli X`
DIST_VARS = {"WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"}

FIXTURES = """
import sys
from pathlib import Path
import numpy as np
from edgegen.runtime.images import read_image, write_image
from edgegen.evaluation.photos import bundled_paths

root = Path(sys.argv[1])
for path in bundled_paths("train")[:5]:
    image = read_image(path)
    image = image[..., :3] if image.ndim == 3 else image  # JPEG has no alpha
    write_image(root / "photos" / (path.stem + ".jpg"), image)
coffee = read_image(next(p for p in bundled_paths("val") if p.stem == "coffee"))
noise = np.random.default_rng(0).normal(0.0, 25.0, coffee.shape)
write_image(root / "noisy.jpg", np.clip(np.rint(coffee + noise), 0, 255).astype(np.uint8))
rocket = next(p for p in bundled_paths("val") if p.stem == "rocket")
write_image(root / "photo.jpg", read_image(rocket))
chelsea = next(p for p in bundled_paths("val") if p.stem == "chelsea")
write_image(root / "small.png", read_image(chelsea))
"""


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    lang: str
    body: list[tuple[int, str]]  # (line number, text)
    marker: tuple[str, str] | None = None
    commands: list[tuple[int, str]] = field(default_factory=list)


def parse(text: str) -> list[Block]:
    """Fenced blocks of a Markdown text, with the marker comment just above each."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        ticks, lang = opening.groups()
        above = next((s.strip() for s in reversed(lines[:i]) if s.strip()), "")
        found = MARKER.match(above)
        marker = (found.group(1), found.group(2)) if found else None
        if marker and marker[0] in ("exit", "needs") and not re.fullmatch(r"[\w.]+", marker[1]):
            raise ValueError(f"line {i}: readme-check: {marker[0]} needs a value: {above}")
        if marker and marker[0] == "exit" and not marker[1].isdigit():
            raise ValueError(f"line {i}: readme-check: exit takes a number: {above}")
        block = Block(i + 1, lang.lower(), [], marker)
        i += 1
        while i < len(lines) and lines[i].strip() != ticks:
            block.body.append((i + 1, lines[i]))
            i += 1
        i += 1
        if block.lang in SHELL_LANGS:
            block.commands = join_continuations(block.body)
        elif block.lang == "python":
            block.commands = [(block.line, "\n".join(s for _, s in block.body))]
        blocks.append(block)
    return blocks


def join_continuations(body: list[tuple[int, str]]) -> list[tuple[int, str]]:
    commands: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, raw in body:
        start, text = pending if pending else (number, "")
        text += raw.rstrip()
        if text.endswith("\\"):
            pending = (start, text[:-1] + " ")
            continue
        pending = None
        if text.strip() and not text.strip().startswith("#"):
            commands.append((start, text.strip()))
    if pending:
        commands.append(pending)
    return commands


def tiny(command: str) -> str:
    """An ``edgegen`` command with tiny settings where it would run long; others unchanged."""
    if re.search(r"[|&;<>()$`]", command.split(" #", 1)[0]):
        return command
    words = shlex.split(command, comments=True)
    launcher = next((k for k, w in enumerate(words) if w.endswith(LAUNCHERS)), None)
    sub = words[launcher + 1] if launcher is not None and launcher + 1 < len(words) else ""
    if not sub or "--resume" in words:
        return command
    if sub == "train" and "--qat-from" in words:  # fine-tuning takes --steps and nothing else
        return shlex.join(_shrink(words, {"--steps": "4"}))
    shrunk = _shrink(words, SHRINK)
    if sub not in TINY_ARGS:
        return shlex.join(shrunk) if shrunk != words else command
    kept: list[str] = []
    skip_next = False
    for word in shrunk:
        if skip_next:
            skip_next = False
        elif word in DROPPED_IN_TINY:
            skip_next = True
        elif word.split("=", 1)[0] not in DROPPED_IN_TINY:
            kept.append(word)
    return f"{shlex.join(kept)} {TINY_ARGS[sub]}"


def _shrink(words: list[str], values: dict[str, str]) -> list[str]:
    """``--option N`` / ``--option=N`` with N replaced by ``values[option]``."""
    out = list(words)
    for k, word in enumerate(out):
        name = word.split("=", 1)[0]
        if name in values and "=" in word:
            out[k] = f"{name}={values[name]}"
        elif word in values and k + 1 < len(out):
            out[k + 1] = values[word]
    return out


def why_not(block: Block, tiny_mode: bool) -> str | None:
    """Why a block with commands does not run here, or None when it runs."""
    if block.marker is None:
        return None
    kind, arg = block.marker
    if kind == "skip":
        return arg or "marked skip"
    if kind == "slow" and tiny_mode:
        return "slow: runs without --tiny"
    if kind == "needs" and not importable(arg):
        return f"needs {arg}, not installed"
    return None


def importable(module: str) -> bool:
    """Whether the venv's python (which runs the blocks) can import ``module``."""
    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c", probe]).returncode == 0


def scratch_copy(dest: Path) -> None:
    """The repository's tracked and untracked-but-not-ignored files, with their times, and a
    .venv made of links to this one's."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for name in filter(None, listed.split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    venv = ROOT / ".venv"
    (dest / ".venv").mkdir()
    for entry in venv.iterdir():
        if entry.name != ".installed-stamp":
            (dest / ".venv" / entry.name).symlink_to(entry)
    (dest / ".venv" / ".installed-stamp").touch()


def run_one(
    command: str, lang: str, cwd: Path, env: dict[str, str], timeout: float, number: int
) -> tuple[int, str]:
    if lang == "python":  # a file, as a user would save it (multiprocessing re-imports it)
        script = cwd / ".readme-check" / f"line{number}.py"
        script.parent.mkdir(exist_ok=True)
        script.write_text(command + "\n", encoding="utf-8")
        argv = [str(cwd / ".venv" / "bin" / "python"), str(script)]
    else:
        argv = ["bash", "-o", "pipefail", "-c", command]
    # A session of its own, so a timeout ends what the command started too (torchrun's workers).
    with subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    ) as proc:  # fmt: skip
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            return 124, f"{out}\n(timed out after {timeout:.0f} s)"
    return proc.returncode, out


def doc_pages(root: Path = ROOT) -> list[Path]:
    """README.md, then the pages mkdocs.yml's nav lists, in its order."""
    pages = [root / "README.md"]
    config = root / "mkdocs.yml"
    if config.is_file():
        nav = config.read_text(encoding="utf-8").split("\nnav:", 1)[-1]
        for line in nav.splitlines()[1:]:
            if line.strip() and not line.startswith(" "):
                break  # the next top-level key
            found = re.search(r":\s*([\w./-]+\.md)\s*$", line)
            if found:
                pages.append(root / "docs" / found.group(1))
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the README's and the guide's commands.")
    parser.add_argument("--readme", type=Path, action="append", help="a file (default: all)")
    parser.add_argument("--tiny", action="store_true", help="train/pipeline/bench: tiny settings")
    parser.add_argument("--list", action="store_true", help="show the plan, run nothing")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per command")
    args = parser.parse_args(argv)
    files = args.readme or doc_pages()
    blocks: list[tuple[str, Block]] = []
    for path in files:
        if not path.is_file():
            print(f"check_readme: error: {path}: no such file", file=sys.stderr)
            return 2
        try:
            parsed = parse(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            print(f"check_readme: error: {path}: {exc}", file=sys.stderr)
            return 2
        # Lines of the first file are "line N", of the others "FILE:N".
        where = "" if path == files[0] else f"{_shown(path)}:"
        blocks += [(where, b) for b in parsed if b.commands]
    if args.list:
        for where, block in blocks:
            reason = why_not(block, args.tiny)
            for number, command in block.commands:
                rewrite = args.tiny and not reason and block.lang != "python"
                shown = tiny(command) if rewrite else command
                status = "skip" if reason else "run"
                print(f"{status:4}  {_at(where, number)}  {shown.splitlines()[0]}"
                      + (f"   ({reason})" if reason else ""))  # fmt: skip
        return 0

    scratch = Path(tempfile.mkdtemp(prefix="edgegen-readme-"))
    env = {k: v for k, v in os.environ.items() if k not in DIST_VARS and k != "PYTHONPATH"}
    env["VIRTUAL_ENV"] = str(scratch / ".venv")
    env["PATH"] = f"{scratch / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    ran = failed = skipped = 0
    try:
        scratch_copy(scratch)
        fixtures = subprocess.run(
            [str(scratch / ".venv" / "bin" / "python"), "-c", FIXTURES, str(scratch)],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        if fixtures.returncode:
            print(f"check_readme: error: cannot make the stand-in photos: {fixtures.stderr}",
                  file=sys.stderr)  # fmt: skip
            return 2
        print(f"scratch copy: {scratch}  ({'tiny' if args.tiny else 'as written'})", flush=True)
        for where, block in blocks:
            reason = why_not(block, args.tiny)
            expected = int(block.marker[1]) if block.marker and block.marker[0] == "exit" else 0
            for number, command in block.commands:
                shown = command.splitlines()[0]
                if reason:
                    skipped += 1
                    print(f"SKIP        {_at(where, number)}  {shown}   ({reason})", flush=True)
                    continue
                actual = tiny(command) if args.tiny and block.lang != "python" else command
                start = time.monotonic()
                rc, out = run_one(actual, block.lang, scratch, env, args.timeout, number)
                seconds = time.monotonic() - start
                ran += 1
                ok = rc == expected
                failed += not ok
                label = "ok  " if ok else f"FAIL rc={rc}"
                first = actual.splitlines()[0]
                print(f"{label:11} {_at(where, number)}  {first}  [{seconds:.1f} s]", flush=True)
                if not ok:
                    tail = out.rstrip().splitlines()[-15:]
                    print("\n".join(f"    | {t}" for t in tail), flush=True)
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"readme check: {ran} ran, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


def _at(where: str, number: int) -> str:
    return f"{where}{number}" if where else f"line {number:4}"


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
