"""The layered design, checked on the source: imports run one way only (runtime <- cluster <-
runners <- evaluation <- train <- export <- pipeline <- cli), the runtime core needs numpy and
onnxruntime only (Pillow inside functions), and only the CLI imports click. Every import counts,
also the ones inside functions and under TYPE_CHECKING: a lazy import is still an arrow."""

from __future__ import annotations

import ast
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]

# Lower layers first; a package may import its own layer and the ones before it.
LAYERS = ("runtime", "cluster", "runners", "evaluation", "train", "export", "pipeline", "cli")
DATA_PACKAGES = {"models"}  # the shipped models: files, no code that imports
RUNTIME_THIRD_PARTY = {"numpy", "onnxruntime"}
# Inside the functions that need them: image files, OpenVINO, onnxruntime's OpenVINO EP plugin.
RUNTIME_LAZY = {"PIL", "openvino", "onnxruntime_ep_openvino"}


def package_dirs(root: Path = ROOT) -> dict[str, Path]:
    """edgegen's packages -> their folders, from pyproject.toml's package-dir."""
    setup = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {
        name.removeprefix("edgegen."): root / folder
        for name, folder in setup["package-dir"].items()
    }


def imports(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(line, absolute module, at module level) for every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    top = {id(n) for n in tree.body}
    top |= {id(n) for stmt in tree.body if isinstance(stmt, ast.If) for n in stmt.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, id(node) in top
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module, id(node) in top


def violations(root: Path = ROOT) -> list[str]:
    """Every import that breaks the layering, as 'file:line: why'."""
    found = []
    rank = {name: i for i, name in enumerate(LAYERS)}
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for package, folder in package_dirs(root).items():
        if package in DATA_PACKAGES:
            continue
        for path in sorted(folder.rglob("*.py")):
            where = path.relative_to(root)
            for line, module, at_top in imports(path):
                parts = module.split(".")
                if parts[0] == "edgegen" and len(parts) > 1 and parts[1] in rank:
                    if rank[parts[1]] > rank[package]:
                        found.append(f"{where}:{line}: {package} imports {module}, a later layer")
                elif parts[0] == "click" and package != "cli":
                    found.append(f"{where}:{line}: {package} imports click (only the CLI may)")
                elif package == "runtime" and parts[0] not in stdlib | {"edgegen"}:
                    if parts[0] in RUNTIME_LAZY and not at_top:
                        continue
                    if parts[0] not in RUNTIME_THIRD_PARTY:
                        found.append(f"{where}:{line}: the runtime core imports {module}")
    return found


def test_every_folder_is_a_known_layer():
    assert set(package_dirs()) == set(LAYERS) | DATA_PACKAGES


def test_imports_run_one_way():
    assert violations() == []


def copy_sources(dest: Path) -> None:
    """pyproject.toml and the packages' Python files (not the shipped models' weights)."""
    shutil.copy(ROOT / "pyproject.toml", dest)
    for source in package_dirs().values():
        shutil.copytree(
            source, dest / source.name, ignore=shutil.ignore_patterns("*.onnx", "*.npz")
        )


@pytest.mark.parametrize(
    ("folder", "line", "expected"),
    [
        (
            "runtime",
            "from edgegen.train.checkpoint import load_model",
            "runtime imports edgegen.train",
        ),
        ("evaluation", "import edgegen.export.int8", "evaluation imports edgegen.export"),
        ("runners", "    from edgegen.cli.main import main", "runners imports edgegen.cli"),
        ("export", "import click", "export imports click"),
        ("runtime", "import onnx", "the runtime core imports onnx"),
        ("runtime", "from PIL import Image", "the runtime core imports PIL"),
    ],
)
def test_a_planted_back_arrow_fails(tmp_path, folder, line, expected):
    """The checker on a copy of the tree with one bad import added: it must name it."""
    copy_sources(tmp_path)
    body = f"def planted() -> None:\n{line}\n" if line.startswith(" ") else f"{line}\n"
    (tmp_path / folder / "planted.py").write_text(body)
    found = violations(tmp_path)
    assert len(found) == 1 and expected in found[0] and "planted.py:" in found[0], found


def test_pillow_inside_a_runtime_function_is_allowed(tmp_path):
    copy_sources(tmp_path)
    (tmp_path / "runtime" / "planted.py").write_text("def f() -> None:\n    import PIL.Image\n")
    assert violations(tmp_path) == []
