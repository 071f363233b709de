"""The shipped models (models/*/): listed by `edgegen models` as their manifests say, verified
on this machine from their golden samples, and shipped as package data."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import sys
from pathlib import Path

import pytest
from clitools import run_edgegen

from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.zoo import DEFAULT_MODEL, models_root, resolve, shipped_models

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
MANIFESTS = sorted(MODELS.glob("*/model.*.manifest.json"))
ONNX_FILES = sorted(MODELS.glob("*/model.*.onnx"))


def test_the_issue_s_models_ship_in_fp32_and_int8():
    have = {(m.parent.name, m.name.split(".")[1]) for m in MANIFESTS}
    wanted = {(n, p) for n in ("denoise-blind", "sr2") for p in ("fp32", "int8")}
    assert wanted <= have, have
    assert models_root().resolve() == MODELS.resolve()
    for folder in {m.parent for m in MANIFESTS}:
        assert (folder / "README.md").is_file(), f"{folder} has no model card"
    total = sum(p.stat().st_size for p in MODELS.rglob("*") if p.is_file())
    assert total < 8e6, f"models/ holds {total / 1e6:.1f} MB: a few MB in all"


def test_models_json_lists_what_the_manifests_say():
    proc = run_edgegen("models", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    listed = {(m["name"], m["precision"]): m for m in json.loads(proc.stdout)}
    assert len(listed) == len(MANIFESTS)
    for path in MANIFESTS:
        manifest = json.loads(path.read_text())
        entry = listed[(path.parent.name, manifest["precision"])]
        model = path.parent / manifest["file"]
        assert entry["size_bytes"] == manifest["size_bytes"] == model.stat().st_size
        digest = hashlib.sha256(model.read_bytes()).hexdigest()
        assert entry["sha256"] == manifest["sha256"] == digest
        assert entry["task"] == manifest["spec"]["task"]
        assert entry["scale"] == manifest["spec"]["scale"]
        assert Path(entry["path"]).resolve() == model.resolve()
        # The metrics come from the folder's metrics.json, as its model card reports them.
        metrics = json.loads((path.parent / "metrics.json").read_text())
        assert entry["metrics"] == metrics["precisions"][manifest["precision"]]


def test_models_table_has_one_row_per_model_and_precision():
    proc = run_edgegen("models")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()[1:] if ":" in line.split()[0]]
    assert len(rows) == len(MANIFESTS)
    for path in MANIFESTS:
        manifest = json.loads(path.read_text())
        ref = f"{path.parent.name}:{manifest['precision']}"
        row = next(r for r in rows if r[0] == ref)
        assert f"{manifest['size_bytes'] / 1e6:.2f}" in row
        assert manifest["spec"]["task"] in row
    denoiser = next(line for line in proc.stdout.splitlines() if line.startswith(DEFAULT_MODEL))
    assert "PSNR σ=25 dB" in denoiser


@pytest.mark.parametrize("model", ONNX_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_shipped_model_passes_edgegen_verify(model):
    proc = run_edgegen("verify", str(model), "--device", "cpu")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS" in proc.stdout


def test_models_and_the_default_model_need_no_torch():
    from test_import_light import run_python

    proc = run_python(
        "import sys\n"
        "from edgegen.cli.main import main\n"
        "try:\n"
        "    main(['models'])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "from edgegen.runtime.zoo import resolve\n"
        "print(resolve('denoise-blind'))\n"
        "heavy = {'torch', 'onnx', 'skimage'} & {m.split('.')[0] for m in sys.modules}\n"
        "assert not heavy, heavy\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert "denoise-blind:int8" in proc.stdout
    assert proc.stdout.strip().endswith("models/denoise-blind/model.int8.onnx")


def test_resolve_names_and_refuses_unknown_ones():
    assert resolve(DEFAULT_MODEL) == MODELS / DEFAULT_MODEL / "model.int8.onnx"
    assert resolve("sr2:fp32") == MODELS / "sr2" / "model.fp32.onnx"
    with pytest.raises(EdgegenError, match=r"unknown model 'nope'.*denoise-blind, sr2"):
        resolve("nope")
    with pytest.raises(EdgegenError, match="no fp16 precision"):
        resolve("sr2:fp16")


def test_a_malformed_manifest_is_one_error_naming_it(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model.fp32.manifest.json").write_text('{"precision": "fp32"}')
    with pytest.raises(EdgegenError, match=r"broken/model.fp32.manifest.json is malformed"):
        shipped_models(tmp_path)


def test_every_shipped_file_is_package_data():
    """`pip install .` ships what pyproject's package-data names: every file under models/."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"]["edgegen.models"] == "models"
    patterns = config["package-data"]["edgegen.models"]
    files = [
        p.relative_to(MODELS).as_posix()
        for p in MODELS.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".py"
    ]
    assert files
    unshipped = [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
    assert not unshipped, unshipped
