"""Security: nothing is ever unpickled, the manifest's sha256 guards loading, and the CLI never
touches the network. (Pickled and tampered models, and external data that escapes the model's
folder, are rows of the bad-input table: test_bad_inputs.py.)"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from badinputs import photo_crop
from clitools import child_env, edgegen_cmd
from PIL import Image
from tinymodels import exported

from edgegen.runtime import EdgegenError
from edgegen.runtime.manifest import check_manifest, manifest_path

ROOT = Path(__file__).resolve().parents[2]
SOURCE_FOLDERS = (
    "runtime", "runners", "evaluation", "train", "export", "pipeline", "cli", "models", "benchmarks"
)  # fmt: skip
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "joblib", "cloudpickle", "shelve"}


def unsafe_loads(source: str) -> list[str]:
    """Every place in ``source`` that could unpickle: an import of a pickle module,
    ``torch.load`` without ``weights_only=True``, ``np.load``/``numpy.load`` with
    ``allow_pickle=True``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            found += [f"import {n}" for n in names if n and n.split(".")[0] in PICKLE_MODULES]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            owner_name = owner.id if isinstance(owner, ast.Name) else ""
            keywords = {k.arg: k.value for k in node.keywords}
            if node.func.attr == "load" and owner_name == "torch":
                flag = keywords.get("weights_only")
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    found.append(f"torch.load without weights_only=True (line {node.lineno})")
            if node.func.attr == "load" and owner_name in ("np", "numpy"):
                flag = keywords.get("allow_pickle")
                if isinstance(flag, ast.Constant) and flag.value is True:
                    found.append(f"np.load(allow_pickle=True) (line {node.lineno})")
    return found


def test_the_checker_finds_each_way_to_unpickle() -> None:
    samples = {
        "import pickle": 1,
        "from joblib import load": 1,
        "import torch\ntorch.load('x.pt')": 1,
        "import torch\ntorch.load('x.pt', weights_only=False)": 1,
        "import torch\ntorch.load('x.pt', weights_only=True)": 0,
        "import numpy as np\nnp.load('x.npz', allow_pickle=True)": 1,
        "import numpy as np\nnp.load('x.npz')": 0,
    }
    for source, count in samples.items():
        assert len(unsafe_loads(source)) == count, source


def test_nothing_in_edgegen_can_unpickle() -> None:
    files = [p for folder in SOURCE_FOLDERS for p in (ROOT / folder).rglob("*.py")]
    assert len(files) > 30
    found = {
        str(p.relative_to(ROOT)): hits
        for p in files
        if (hits := unsafe_loads(p.read_text(encoding="utf-8")))
    }
    assert found == {}


def test_check_manifest(tmp_path: Path) -> None:
    model = tmp_path / "model.fp32.onnx"
    model.write_bytes(b"weights")
    assert check_manifest(model) is None  # no manifest: nothing to check
    digest = "7b4be7ed4b2fe6b34d4f4ab0d5bdaa2ba2fe5a2a40e0ba06a51cf6fc7b6eb02b"  # not it
    manifest_path(model).write_text(json.dumps({"file": model.name, "sha256": digest}))
    with pytest.raises(EdgegenError, match="does not match its manifest"):
        check_manifest(model)
    import hashlib

    real = hashlib.sha256(b"weights").hexdigest()
    ort_file = tmp_path / "model.fp32.ort"
    ort_file.write_bytes(b"ort bytes")
    manifest_path(model).write_text(
        json.dumps(
            {
                "file": model.name,
                "sha256": real,
                "ort": {"file": ort_file.name, "sha256": hashlib.sha256(b"ort").hexdigest()},
            }
        )
    )
    assert check_manifest(model) == real
    with pytest.raises(EdgegenError, match="model.fp32.ort"):
        check_manifest(ort_file)  # the .ort is checked against its own entry


SITECUSTOMIZE = '''
"""Loaded first by every Python child: any attempt to reach the network fails and is recorded."""
import socket

def _refuse(*args, **kwargs):
    with open({marker!r}, "a") as fh:
        fh.write(repr(args[:2]) + "\\n")
    raise OSError("network disabled by the test")

socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
socket.socket.sendto = _refuse
socket.create_connection = _refuse
socket.getaddrinfo = _refuse
'''


def test_the_cli_never_touches_the_network(tmp_path: Path) -> None:
    marker = tmp_path / "NETWORK-ATTEMPTS"
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE.format(marker=str(marker)))
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])

    def child(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)

    control = child(
        sys.executable, "-c", "import socket; socket.create_connection(('1.1.1.1', 80))"
    )
    assert "network disabled by the test" in control.stderr and marker.exists()  # it is armed
    marker.unlink()

    models = exported(("fp32", "fp16", "int8"))
    Image.fromarray(photo_crop()).save(tmp_path / "photo.png")
    model = str(models / "model.int8.onnx")
    for argv in (
        ("run", model, str(tmp_path / "photo.png"), "-o", str(tmp_path / "out")),
        ("verify", model, "--device", "cpu"),
        ("compare", "--reference", str(models / "model.fp32.onnx"), model, "--sizes", "32",
         "--repeats", "1", "--report", str(tmp_path / "report")),
        ("bench", model, "--sizes", "16", "--rounds", "1"),
    ):  # fmt: skip
        proc = child(*edgegen_cmd(*argv))
        assert proc.returncode == 0, (argv[0], proc.stderr)
    assert not marker.exists(), marker.read_text()
    assert (tmp_path / "out" / "photo.png").is_file()
