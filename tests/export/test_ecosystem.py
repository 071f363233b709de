"""The ecosystem's architectures, exported as a user holding a state dict of one would.

Each model of the zoo (:mod:`ecosystem_zoo`: small configurations of spandrel's own classes,
seeded random weights, BatchNorm statistics randomised) is saved as a state dict, loaded back as
``edgegen export FILE`` loads it (spandrel detects the architecture from the keys), and exported.
Verification runs on two real held-out photos the export never saw (crops of scikit-image's
rocket and coffee), at sizes that are and are not multiples of the pad multiple.

``FULL`` architectures go through fp32, fp16 and int8, the runtime on a real photo, tiled
against whole and ``edgegen verify``; ``FP32`` ones through fp32 export and verification only
(they are the slower models). ``NAMED`` ones fail in one line naming why, and the test holds
them to that.

Each export takes 2 to 40 seconds on 2 cores, the whole zoo about 15 minutes: ``make test``
runs the ``QUICK`` few of each list (one per family: plain convs, a noise-map denoiser, window
attention, a perturbation-measured field), ``make test-ecosystem`` (``EDGEGEN_ECOSYSTEM=all``)
every one.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from clitools import run_edgegen
from ecosystem_zoo import EXPECTED, ZOO, state_dict_of
from PIL import Image
from tinymodels import photo

from edgegen.export.transaction import ExportConfig, VerificationFailed, export_network
from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.generator import Generator, TilingWarning
from edgegen.train.ecosystem import import_spandrel
from edgegen.train.networks import load_network

# spandrel is a test requirement (make install has it): imported the way export imports it, so
# that a missing one fails here rather than skipping the suite.
import_spandrel()

# fp32, fp16 and int8 (each written, or refused with a named reason), the runtime, tiling and
# `edgegen verify`.
FULL = (
    "Compact",
    "SwiftSRGAN",
    "ESRGAN",
    "SwinIR",
    "Swin2SR",
    "HAT",
    "DAT",
    "OmniSR",
    "DITN",
    "SPAN",
    "SAFMN",
    "PLKSR",
    "RCAN",
    "MoSR",
    "SeemoRe",
    "NAFNet",
    "DRUNet",
    "DnCNN",
    "RetinexFormer",
    "RealCUGAN",
)
# fp32 export and verification.
FP32 = (
    "RGT",
    "KBNet",
    "MMRealSR",
    "SAFMNBCIE",
    "MoESR",
    "FDAT",
    "SCUNet",
    "CRAFT",
    "DCTLSA",
)
# Architectures whose export fails, and the words the one-line reason must hold.
NAMED: dict[str, str] = {
    "ATD": "ONNX export of operator Sort",
    "MixDehazeNet": "its Pad node",
    "IPT": "failed at opset 18",
    "HVICIDNet": "its Expand node",
    "AuraSR": "convolution for kernel of unknown shape",
    "DRCT": "fp32 at batch 2",
}
# Measured by benchmarks/ecosystem.py only: each takes minutes on 2 cores (a 320-pixel probe of
# a field that spans 293 pixels; GRL's attention at every verification size), past what the
# suite can spend. The results file records what they export to.
BENCHMARK_ONLY = {
    "FFTformer": "passes fp32, fp16 and int8 (7 minutes)",
    "GRL": "fails: fp32 at batch 2 (8 minutes)",
}


# make test's share of each list: fast ones, one of each family. Window attention is SwinIR's,
# through the command line below (DITN, dynamo's window attention, is in the full zoo: it took
# over a minute of make test, SAFMN's padded dynamo graph a few seconds).
QUICK = {"DnCNN", "Compact", "SPAN", "PLKSR", "SAFMN", "MoESR", "IPT"}


def selected(archs: Sequence[str]) -> list[str]:
    """All of ``archs`` under ``EDGEGEN_ECOSYSTEM=all``, else its ``QUICK`` ones."""
    if os.environ.get("EDGEGEN_ECOSYSTEM") == "all":
        return list(archs)
    return [a for a in archs if a in QUICK]


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two crops of real held-out photos (rocket, coffee): verification's photos."""
    folder = tmp_path_factory.mktemp("heldout")
    Image.fromarray(photo(1)[40:200, 100:300]).save(folder / "rocket.png")
    Image.fromarray(photo(2)[60:220, 120:320]).save(folder / "coffee.png")
    return folder


def saved(arch: str, folder: Path) -> Path:
    """The zoo's model of ``arch`` as a user has it: a state dict on disk, every other
    architecture as .safetensors."""
    state = state_dict_of(arch)
    if sorted(ZOO).index(arch) % 2:
        from safetensors.torch import save_file

        path = folder / f"{arch}.safetensors"
        save_file(state, str(path))
    else:
        path = folder / f"{arch}.pth"
        torch.save(state, path)
    return path


def export(arch: str, tmp: Path, held_out: Path, precision: tuple[str, ...]):  # type: ignore[no-untyped-def]
    network = load_network(saved(arch, tmp))
    expected = EXPECTED[arch]
    spec = network.spec
    assert (spec.scale, spec.in_channels, spec.out_channels) == (
        expected["scale"],
        expected["in"],
        expected["out"],
    )
    config = ExportConfig(
        out=str(tmp / "out"), precision=precision, calib_count=4, val=str(held_out),
        progress=False,
    )  # fmt: skip
    try:
        return export_network(network, config), []
    except VerificationFailed as failed:
        return failed, failed.failures


def a_photo(scale: int) -> np.ndarray:
    """A real held-out photo (chelsea) the export did not verify on, degraded as an upscaler's
    input is (a smaller crop for an upscaler): float RGB, odd sizes."""
    side = (161, 203) if scale == 1 else (81, 103)
    return np.asarray(photo(0)[100 : 100 + side[0], 120 : 120 + side[1]], np.float32) / 255.0


@pytest.mark.parametrize("arch", selected(FULL))
def test_full(arch: str, tmp_path: Path, held_out: Path) -> None:
    result, failures = export(arch, tmp_path, held_out, ("fp32", "fp16", "int8"))
    assert not [f for f in failures if f.startswith("fp32")], failures
    refused = {f.split(" ")[0].rstrip(":") for f in failures}
    assert refused <= {"fp16", "int8"}, failures  # each failure names its precision and why
    if refused:  # nothing was written: the user exports what passes, as the hint says
        kept = tuple(p for p in ("fp32", "fp16", "int8") if p not in refused)
        result, failures = export(arch, tmp_path, held_out, kept)
        assert failures == []
    out = tmp_path / "out"
    written = {a.precision for a in result.artifacts}
    assert written == {"fp32", "fp16", "int8"} - refused
    manifest = json.loads((out / "model.fp32.manifest.json").read_text())
    assert manifest["export"]["exporter"] in ("dynamo", "trace")
    spec = Generator(out / "model.fp32.onnx", "cpu").spec
    assert spec.global_field or (spec.receptive_field or 0) >= 1

    image = a_photo(spec.scale)
    whole = Generator(out / "model.fp32.onnx", "cpu", tile=0)(image)
    h, w = image.shape[:2]
    assert whole.shape == (h * spec.scale, w * spec.scale, 3)
    if not spec.global_field:
        assert spec.receptive_field is not None
        overlap = Generator(out / "model.fp32.onnx", "cpu").overlap
        tile = math.ceil(max(48, 2 * overlap + 16) / spec.pad_multiple) * spec.pad_multiple
        if tile < max(h, w):  # at least two tiles, else nothing to compare
            tiled = Generator(out / "model.fp32.onnx", "cpu", tile=tile)(image)
            assert float(np.abs(tiled - whole).max()) * 255 <= 1.0, (tile, overlap)
    else:
        with pytest.warns(TilingWarning):
            Generator(out / "model.fp32.onnx", "cpu", tile=64)(image)
    for precision in sorted(written):
        proc = run_edgegen("verify", str(out / f"model.{precision}.onnx"))
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("arch", selected(FP32))
def test_fp32(arch: str, tmp_path: Path, held_out: Path) -> None:
    result, failures = export(arch, tmp_path, held_out, ("fp32",))
    assert failures == []
    report = result.artifacts[0].report
    assert report is not None and report.passed
    sizes = {row.size for row in report.rows}
    assert {"37x53", "96x128"} <= sizes


@pytest.mark.parametrize("arch", selected(sorted(NAMED)))
def test_named_failure(
    arch: str, tmp_path: Path, held_out: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises((EdgegenError, VerificationFailed)) as failed:
        _, failures = export(arch, tmp_path, held_out, ("fp32",))
        if failures:
            raise VerificationFailed(failures, [])
    assert NAMED[arch] in str(failed.value) and "\n" not in str(failed.value)
    # A failed trace prints its whole TorchScript graph from C++ unless export silences it.
    assert "Torch IR graph" not in capfd.readouterr().out


def test_the_zoo_covers_thirty_architectures() -> None:
    """Every architecture of the zoo is in one list; 20 go through every precision, and 30
    export and verify in fp32 (FFTformer in the benchmark's run)."""
    assert len(set(FULL)) >= 20 and len(set(FULL) | set(FP32) | {"FFTformer"}) >= 30
    assert set(FULL) | set(FP32) | set(NAMED) >= QUICK
    assert set(FULL) | set(FP32) | set(NAMED) | set(BENCHMARK_ONLY) == set(ZOO)


@pytest.mark.parametrize("arch", ["ESRGAN", "SwinIR"])
def test_export_a_state_dict_from_the_command_line_and_run_it(
    arch: str, tmp_path: Path, held_out: Path
) -> None:
    """`edgegen export model.pth` as the README shows it, then `edgegen run` on a real photo
    with the int8 model, and `edgegen compare` with the .pth itself as the reference."""
    path = tmp_path / f"{arch.lower()}.pth"
    torch.save(state_dict_of(arch), path)
    out = tmp_path / "out"
    proc = run_edgegen(
        "export", str(path), "--out", str(out), "--precision", "fp32,fp16,int8",
        "--calib-count", "16", "--val", str(held_out), "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"spandrel:{arch}" in proc.stdout
    for precision in ("fp32", "fp16", "int8"):
        manifest = json.loads((out / f"model.{precision}.manifest.json").read_text())
        assert manifest["verification"]["passed"] is True
    source = tmp_path / "photo.jpg"
    Image.fromarray(photo(0)[120:201, 140:243]).save(source, quality=95)  # 81x103, chelsea
    ran = run_edgegen("run", str(out / "model.int8.onnx"), str(source), "-o", str(tmp_path / "up"))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    with Image.open(tmp_path / "up" / "photo.png") as im:
        assert im.size == (206, 162)
    compared = run_edgegen(
        "compare", "--reference", str(path), str(out / "model.fp32.onnx"),
        "--sizes", "37x53", "--max-lsb", "0.5",
    )  # fmt: skip
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert "PASS" in compared.stdout
