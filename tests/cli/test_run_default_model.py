"""`edgegen run photo.png -o out/` with no model: the shipped blind denoiser; --model NAME picks
any shipped model; the original `edgegen run MODEL INPUTS...` keeps working."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data
from clitools import assert_one_line_error, run_edgegen
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def noisy(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A held-out photo (never trained on) with Gaussian noise of sigma 25, stored as 8 bits."""
    clean = skimage.data.chelsea()[:160, :200]
    rng = np.random.default_rng(7)
    noise = rng.normal(0.0, 25.0, clean.shape)
    pixels = np.clip(np.rint(clean + noise), 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("noisy") / "cat.png"
    Image.fromarray(pixels).save(path)
    return path, clean


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(peak_signal_noise_ratio(a, b, data_range=255))


def denoised(out: Path) -> np.ndarray:
    return np.asarray(Image.open(out / "cat.png"))


def test_no_model_runs_the_shipped_denoiser(noisy, tmp_path):
    path, clean = noisy
    proc = run_edgegen("run", str(path), "-o", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    out = denoised(tmp_path / "out")
    assert out.shape == clean.shape and out.dtype == np.uint8
    before = psnr(clean, np.asarray(Image.open(path)))
    after = psnr(clean, out)
    assert after > before + 6.0, (before, after)


def test_model_by_name_and_by_file_give_the_same_output(noisy, tmp_path):
    path, clean = noisy
    by_name = run_edgegen(
        "run", "--model", "denoise-blind:fp32", str(path), "-o", str(tmp_path / "a")
    )
    assert by_name.returncode == 0, by_name.stderr
    model = MODELS / "denoise-blind" / "model.fp32.onnx"
    by_file = run_edgegen("run", str(model), str(path), "-o", str(tmp_path / "b"))
    assert by_file.returncode == 0, by_file.stderr
    a, b = denoised(tmp_path / "a"), denoised(tmp_path / "b")
    assert np.array_equal(a, b)
    assert psnr(clean, a) > psnr(clean, np.asarray(Image.open(path))) + 6.0


def test_shipped_super_resolver_by_name_doubles_the_size(tmp_path):
    small = tmp_path / "small.png"
    Image.fromarray(skimage.data.coffee()[:48, :64]).save(small)
    proc = run_edgegen("run", "-m", "sr2", str(small), "-o", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert np.asarray(Image.open(tmp_path / "out" / "small.png")).shape == (96, 128, 3)


def test_unknown_names_and_missing_inputs_are_one_line_errors(noisy, tmp_path):
    path, _ = noisy
    assert_one_line_error(
        run_edgegen("run", "--model", "nope", str(path), "-o", str(tmp_path / "o")),
        "unknown model 'nope'",
        "denoise-blind",
    )
    model = MODELS / "denoise-blind" / "model.int8.onnx"
    assert_one_line_error(run_edgegen("run", str(model), "-o", str(tmp_path / "o")), "no INPUTS")
    assert not (tmp_path / "o").exists()


def test_mean_matching_is_on_by_default_and_can_be_turned_off(tmp_path):
    """The shipped denoiser's output keeps the photo's colour means (edgegen.runtime.means);
    --no-match-means writes the network's own output, exactly what Generator gives without."""
    from edgegen.evaluation.quality import colour_shift
    from edgegen.runtime import Generator

    clean = skimage.data.chelsea()  # whole: its dark fur makes a dark region
    rng = np.random.default_rng(11)
    pixels = np.clip(np.rint(clean + rng.normal(0.0, 25.0, clean.shape)), 0, 255).astype(np.uint8)
    path = tmp_path / "cat.png"
    Image.fromarray(pixels).save(path)
    model = MODELS / "denoise-blind" / "model.fp32.onnx"
    for flag, name, expect in (
        ((), "on", Generator(model, device="cpu")(pixels)),
        (("--no-match-means",), "off", Generator(model, device="cpu", match_means=False)(pixels)),
    ):
        proc = run_edgegen("run", str(model), str(path), "-o", str(tmp_path / name), *flag)
        assert proc.returncode == 0, proc.stderr
        np.testing.assert_array_equal(denoised(tmp_path / name), expect)
    on, off = denoised(tmp_path / "on"), denoised(tmp_path / "off")
    assert not np.array_equal(on, off)
    # The dark fur (16x16 blocks of dark mean luma) keeps its colour within half a step.
    shift = colour_shift(clean.astype(np.float32) / 255, on.astype(np.float32) / 255)
    assert shift.dark is not None and shift.dark < 0.5 and shift.overall < 0.3, shift
    sr = MODELS / "sr2" / "model.int8.onnx"
    assert_one_line_error(
        run_edgegen("run", str(sr), str(path), "-o", str(tmp_path / "sr"), "--match-means"),
        "match_means needs a model whose output matches",
    )
