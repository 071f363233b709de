"""The CUDA session defaults, decided on the CPU: what options the CUDA provider would get for
fp32 and fp16 models. The values come from the H100 runs (benchmarks/results/gpu-*.json):
onnxruntime's use_tf32=0 took fp16 convolutions off the tensor cores (33.5 ms instead of 4.6),
and fuse_conv_bias took medium fp16 from 4.62 to 3.11 ms; an fp32 model must compute in fp32 to
pass its golden check. tests/gpu checks on a real card that the options reach the provider."""

from __future__ import annotations

from pathlib import Path

import pytest
from tinymodels import identity_onnx

import edgegen.runtime.generator as generator_module
from edgegen.runtime import EdgegenError, Generator, ModelSpec
from edgegen.runtime.providers import CUDA
from edgegen.runtime.session import OpenedSession, open_session
from edgegen.runtime.session_config import SessionConfig, applied, cuda_options, fill_defaults


def test_cuda_options_leave_tf32_to_onnxruntime_and_fuse_the_bias():
    filled = fill_defaults(SessionConfig(), CUDA)
    assert filled.tf32 is None and filled.fuse_conv_bias is True
    assert cuda_options(filled) == {"prefer_nhwc": "1", "fuse_conv_bias": "1"}
    exact = fill_defaults(SessionConfig(tf32=False, fuse_conv_bias=False), CUDA)
    assert cuda_options(exact) == {"prefer_nhwc": "1", "use_tf32": "0", "fuse_conv_bias": "0"}
    cpu = fill_defaults(SessionConfig(), "CPUExecutionProvider")
    assert cpu.tf32 is None and cpu.fuse_conv_bias is None


@pytest.fixture
def as_if_on_cuda(monkeypatch):
    """open_session makes a real CPU session but reports CUDA, with the config a CUDA session
    gets for the precision the Generator tells it; every config asked for is recorded."""
    asked: list[SessionConfig] = []

    def fake_open(
        path: Path, device: object, config: SessionConfig, precision: str | None = None
    ) -> OpenedSession:
        asked.append(config)
        real = open_session(path, "cpu", SessionConfig(threads=1))
        return OpenedSession(real.session, [CUDA, "CPUExecutionProvider"],
                             applied(config, CUDA, precision))  # fmt: skip

    monkeypatch.setattr(generator_module, "open_session", fake_open)
    return asked


def model(tmp_path: Path, precision: str) -> Path:
    spec = ModelSpec(task="denoise", precision=precision)
    return identity_onnx(tmp_path / f"id.{precision}.onnx", spec)


def test_an_fp32_model_opens_one_session_without_tf32_or_bias_fusion(tmp_path, as_if_on_cuda):
    gen = Generator(model(tmp_path, "fp32"), device="cuda")
    assert len(as_if_on_cuda) == 1  # the spec is read from the file, before the session
    assert gen.options.tf32 is False and gen.options.fuse_conv_bias is False
    assert gen.options.prefer_nhwc is False  # exact fp32 ran 12-20% faster in NCHW
    assert cuda_options(gen.options) == {"use_tf32": "0", "fuse_conv_bias": "0"}


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_other_models_keep_the_fast_defaults_in_one_session(tmp_path, as_if_on_cuda, precision):
    gen = Generator(model(tmp_path, precision), device="cuda")
    assert len(as_if_on_cuda) == 1
    assert gen.options.tf32 is None and gen.options.fuse_conv_bias is True
    assert cuda_options(gen.options) == {"prefer_nhwc": "1", "fuse_conv_bias": "1"}


def test_what_the_caller_sets_is_kept_for_fp32(tmp_path, as_if_on_cuda):
    gen = Generator(model(tmp_path, "fp32"), device="cuda", tf32=True, fuse_conv_bias=True)
    assert len(as_if_on_cuda) == 1
    assert gen.options.tf32 is True and gen.options.fuse_conv_bias is True
    assert gen.options.prefer_nhwc is True
    tf32 = Generator(model(tmp_path, "fp32"), device="cuda", tf32=True)  # TF32 runs in NHWC
    assert tf32.options.fuse_conv_bias is False and tf32.options.prefer_nhwc is True
    nhwc = Generator(model(tmp_path, "fp32"), device="cuda", prefer_nhwc=True)
    assert nhwc.options.tf32 is False and nhwc.options.prefer_nhwc is True


def test_no_second_session_under_tensorrt(tmp_path, monkeypatch):
    asked: list[SessionConfig] = []

    def fake_open(
        path: Path, device: object, config: SessionConfig, precision: str | None = None
    ) -> OpenedSession:
        asked.append(config)
        real = open_session(path, "cpu", SessionConfig(threads=1))
        trt = ["TensorrtExecutionProvider", CUDA, "CPUExecutionProvider"]
        return OpenedSession(real.session, trt, config)

    monkeypatch.setattr(generator_module, "open_session", fake_open)
    Generator(model(tmp_path, "fp32"), device="tensorrt")
    assert len(asked) == 1  # a second session would build TensorRT's engine twice


def test_on_the_cpu_neither_option_is_accepted(tmp_path):
    for options in ({"tf32": True}, {"fuse_conv_bias": True}):
        with pytest.raises(EdgegenError, match="cannot apply on the CPU"):
            Generator(model(tmp_path, "fp32"), device="cpu", **options)
    gen = Generator(model(tmp_path, "fp32"), device="cpu", tf32=False, fuse_conv_bias=False)
    assert gen.providers == ["CPUExecutionProvider"]


def test_an_ort_format_fp32_model_learns_its_spec_from_a_first_session(tmp_path, as_if_on_cuda):
    """An ORT-format file's spec is not in protobuf: the first session says it, and an fp32
    model then gets its exact session."""
    onnx_path = model(tmp_path, "fp32")
    ort_path = tmp_path / "id.fp32.ort"
    from edgegen.runtime.session import create_session

    create_session(onnx_path, save_optimized=ort_path, save_format="ORT")
    gen = Generator(ort_path, device="cuda")
    assert len(as_if_on_cuda) == 2
    assert gen.spec.precision == "fp32" and gen.options.tf32 is False
