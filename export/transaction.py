"""The export transaction: checkpoint or module -> verified ONNX artifacts with manifests.

Every artifact is written under a temporary name, verified, and only when all of them pass are
they renamed to ``model.<precision>.onnx`` (with golden samples and a manifest beside each). A
failed tolerance raises with exit code 1 and leaves nothing under a real name; bad input raises
with exit code 2.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from edgegen.runtime import __version__
from edgegen.runtime.errors import EdgegenError
from edgegen.runtime.files import folder_lock, remove_stale_temps, temp_beside
from edgegen.runtime.manifest import file_entry, write_manifest
from edgegen.runtime.spec import ModelSpec

from . import fp16 as fp16_mod
from .onnx_export import EXPORTERS, export_fp32, fixed_batch, is_own_generator, set_spec
from .padding import with_internal_padding
from .verify import References, Report, golden, tolerance_for, torch_references, verify

# What --precision takes: the spec's precisions, and auto (the cheapest int8 meeting a target).
EXPORT_PRECISIONS = ("fp32", "fp16", "int8", "auto")
CALIB_METHODS = ("minmax", "entropy", "percentile")
# Tiled against whole in fp32, above which a measured local field is taken for global: float
# rounding alone stays far below it.
LOCAL_TILED_LSB = 0.5


@dataclass
class ExportConfig:
    """Fields equal the ``edgegen export`` options."""

    out: str = "export"
    precision: tuple[str, ...] = ("fp32",)
    opset: int | None = None  # DEFAULT_OPSET, or dynamo's own where its graph cannot convert
    calib: str = "bundled"
    calib_count: int = 32
    calib_method: str = "minmax"
    per_channel: bool = True
    channel_pad: bool = True  # int8: zero channels so onnxruntime's fastest kernel takes every conv
    int8_mode: str = "static"  # "dynamic" is refused, with the reason
    ort_format: bool = False
    verify: bool = True
    val: str = "bundled"  # held-out photos for verification and golden samples
    tolerances: dict[str, dict[str, float]] = field(default_factory=dict)
    progress: bool = True
    target: str | None = None  # auto: the accuracy target, e.g. "psnr-drop<=0.1"
    qat: int | None = None  # int8: QAT fine-tune steps first; auto: QAT's steps (default 100)
    qat_loss: str | None = None  # QAT's loss; None: the run's own (export_network), else l1
    fp16_block: str = "default"  # "auto": also keep the nodes that break fp16's tolerance fp32
    exporter: str = "auto"  # dynamo, falling back to the TorchScript trace (EXPORTERS)

    def __post_init__(self) -> None:
        if isinstance(self.precision, str):  # "fp32,int8" from a caller, as on the CLI
            self.precision = tuple(p.strip() for p in self.precision.split(",") if p.strip())

    def validate(self) -> None:
        unknown = [p for p in self.precision if p not in EXPORT_PRECISIONS]
        if unknown or not self.precision:
            given = ", ".join(unknown) or "(none)"
            raise EdgegenError(
                f"unknown precision {given}; choose from {', '.join(EXPORT_PRECISIONS)}"
            )
        if self.calib_method not in CALIB_METHODS:
            raise EdgegenError(
                f"unknown calibration method {self.calib_method!r}; "
                f"choose from {', '.join(CALIB_METHODS)}"
            )
        if self.calib_count < 1:
            raise EdgegenError(f"--calib-count must be >= 1, got {self.calib_count}")
        if "int8" in self.precision:
            from .int8 import check_int8_mode

            check_int8_mode(self.int8_mode)
        for prec in self.tolerances:
            if prec not in EXPORT_PRECISIONS:
                raise EdgegenError(f"tolerance for unknown precision {prec!r}")
        if "auto" in self.precision:
            if not self.target:
                raise EdgegenError(
                    "--precision auto needs --target, e.g. --target 'psnr-drop<=0.1'"
                )
        elif self.target is not None:
            raise EdgegenError("--target applies to --precision auto only")
        if self.target is not None:
            from .target import parse_target

            parse_target(self.target)
        if self.exporter not in EXPORTERS:
            raise EdgegenError(
                f"unknown exporter {self.exporter!r}; choose from {', '.join(EXPORTERS)}"
            )
        if self.fp16_block not in ("default", "auto"):
            raise EdgegenError(f"--fp16-block must be default or auto, got {self.fp16_block!r}")
        if self.qat_loss is not None:
            from edgegen.train.config import LOSSES

            if self.qat_loss not in LOSSES:
                raise EdgegenError(
                    f"unknown QAT loss {self.qat_loss!r}; choose from {', '.join(LOSSES)}"
                )
        if self.qat is not None:
            if self.qat < 0:
                raise EdgegenError(f"--qat must be >= 0 steps, got {self.qat}")
            if "int8" not in self.precision and "auto" not in self.precision:
                raise EdgegenError("--qat applies to --precision int8 or auto")


@dataclass
class Artifact:
    precision: str
    path: Path
    manifest: Path
    golden: Path | None
    ort: Path | None
    report: Report | None
    size_bytes: int


class VerificationFailed(EdgegenError):
    """An artifact broke its tolerance: exit code 1, and no artifact was written."""

    exit_code = 1

    def __init__(self, failures: list[str], artifacts: list[Artifact]) -> None:
        hints = []
        if any(f.startswith("int8") for f in failures):
            hints.append(
                "int8 loses too much here: try --precision auto --target 'psnr-drop<=0.25'"
            )
        if any(f.startswith("fp16") for f in failures):
            hints.append("fp16: --fp16-block auto keeps the layers that break it in fp32")
        tail = f" ({'; '.join(hints)})" if hints else ""
        super().__init__("verification failed, nothing written: " + "; ".join(failures) + tail)
        self.failures = failures
        self.artifacts = artifacts
        self.spec: ModelSpec | None = None  # what the export measured (receptive field, tiling)
        self.export_info: dict[str, Any] = {}


@dataclass
class ExportResult:
    out: Path
    artifacts: list[Artifact]
    spec: ModelSpec | None = None  # the spec the artifacts carry (precision aside)
    export_info: dict[str, Any] = field(default_factory=dict)  # exporter, onnxslim, tiling


def export_checkpoint(checkpoint: str | Path, config: ExportConfig) -> ExportResult:
    """Export a training run (its best checkpoint), an edgegen checkpoint, or a state dict of
    a known architecture (``.pth``, ``.safetensors``, ...)."""
    from edgegen.train.networks import load_network

    config.validate()
    return export_network(load_network(checkpoint), config)


def export_network(network: Any, config: ExportConfig) -> ExportResult:
    """Export a :class:`~edgegen.train.networks.Network` (from ``load_network``). QAT fine-tunes
    under the loss the run trained with, unless ``config.qat_loss`` names one."""
    if config.qat_loss is None and network.train_loss is not None:
        config = dataclasses.replace(config, qat_loss=network.train_loss)
    return export_module(
        network.module,
        network.spec,
        config,
        source=network.source,
        qat_record=network.qat_record,
        loader=network.loader,
    )


def export_module(
    module: nn.Module,
    spec: ModelSpec,
    config: ExportConfig,
    source: Path | None = None,
    qat_record: dict[str, Any] | None = None,
    loader: dict[str, Any] | None = None,
) -> ExportResult:
    """Export any image-to-image ``nn.Module`` described by ``spec`` (NCHW float in [0, 1]).

    ``qat_record`` is what ``edgegen train --qat-from`` stores in a checkpoint: the module's
    weights are then QAT's, and int8 quantizes with its learned ranges. ``loader`` is what the
    loader of a third-party network reported (recorded in the manifest).
    """
    config.validate()
    out = _prepare_out(Path(config.out))
    # One export writes into a folder at a time: a second would remove the first one's staged
    # files as stale, or interleave artifacts of two models.
    with folder_lock(out, "export folder"):
        remove_stale_temps(out)  # left by an export that was killed
        return _export_locked(module, spec, config, out, source, qat_record, loader or {})


def _export_locked(
    module: nn.Module,
    spec: ModelSpec,
    config: ExportConfig,
    out: Path,
    source: Path | None,
    qat_record: dict[str, Any] | None,
    loader: dict[str, Any],
) -> ExportResult:
    if spec.provenance.edgegen_version is None:
        provenance = dataclasses.replace(spec.provenance, edgegen_version=__version__)
        spec = spec.replace(provenance=provenance)
    padding = 1
    if not is_own_generator(module):  # edgegen's own generators are convolutions that never pad
        spec, padding = with_internal_padding(module, spec)
    fp32_model, export_info = export_fp32(module, spec, config.opset, config.exporter)
    if padding > 1:
        export_info["internal_pad_multiple"] = padding
    # Every later graph (QAT's re-export, the auto search's) is at the opset the fp32 took.
    config = dataclasses.replace(config, opset=export_info["opset"])
    spec = _with_field(module, spec)
    set_spec(fp32_model, spec)
    refs = torch_references(module, spec, config.val)
    export = _Transaction(out, module, spec, config, refs, source, qat_record)
    export.loader = loader
    try:
        export.write_fp32(fp32_model, export_info)
        for precision in (p for p in EXPORT_PRECISIONS if p in config.precision):
            export.artifact(precision)
        return export.commit()
    except OSError as exc:  # a full disk or a vanished folder while staging: nothing renamed
        where = f" ({exc.filename})" if exc.filename else ""
        raise EdgegenError(f"export to {out} failed{where}: {exc.strerror or exc}") from None
    except EdgegenError as exc:
        # A message from the runtime names the file it loaded: the staged, hidden one, which
        # is gone by the time the user reads it. Name the artifact instead.
        message = export.final_names(str(exc))
        if isinstance(exc, VerificationFailed) or message == str(exc):
            raise
        raise EdgegenError(message, exit_code=exc.exit_code) from None
    finally:
        export.clean_up()


class _Transaction:
    """One export's staged files: each artifact is made, verified and written under a temporary
    name (:meth:`artifact`), and renamed into place only when every one passed (:meth:`commit`).
    """

    def __init__(
        self,
        out: Path,
        module: nn.Module,
        spec: ModelSpec,
        config: ExportConfig,
        refs: References,
        source: Path | None,
        qat_record: dict[str, Any] | None,
    ) -> None:
        self.out, self.module, self.spec, self.config = out, module, spec, config
        self.refs, self.source, self.qat_record = refs, source, qat_record
        self.staged: list[tuple[Path, Path]] = []  # (temporary, final)
        self.artifacts: list[Artifact] = []
        self.failures: list[str] = []
        # fp16 and int8 start from the fp32 file, so it is written even when not asked for.
        self.fp32_tmp = temp_beside(out / "model.fp32.onnx")
        self.fp32_model: onnx.ModelProto | None = None
        self.export_info: dict[str, Any] = {}
        self.loader: dict[str, Any] = {}

    def stage(self, name: str) -> Path:
        tmp = temp_beside(self.out / name)
        self.staged.append((tmp, self.out / name))
        return tmp

    def write_fp32(self, model: onnx.ModelProto, export_info: dict[str, Any]) -> None:
        """Stage the fp32 graph; check that it runs a batch, measure tiled against whole, and
        record that in the spec every artifact carries."""
        onnx.save(model, str(self.fp32_tmp))
        _check_loads(self.fp32_tmp, "model.fp32.onnx")  # this opset at all? (exit 2 if not)
        fp32 = tolerance_for("fp32", self.config.tolerances.get("fp32"))
        self.failures += _batch_failures(self.fp32_tmp, self.refs, fp32.max_lsb)
        from .receptive import tiled_error

        photos = [s.degraded for s in self.refs.samples if s.size == "full"]
        if self.config.verify and photos and not self.failures:
            measured = tiled_error(self.fp32_tmp, self.spec, photos)
            export_info = dict(export_info, tiling=measured.to_dict())
            self.spec = self.spec.replace(tiled_max_lsb=min(255.0, measured.max_lsb))
            if not self.spec.global_field and measured.max_lsb > LOCAL_TILED_LSB:
                # Tiles overlapping by the measured field still differ: the field missed a
                # dependency the probe inputs did not excite (a channel attention whose ReLU
                # was off on them, RCAN's). What tiling may assume is what the photos show.
                export_info["field_why"] = (
                    f"measured {self.spec.receptive_field} px, but tiles overlapping by it "
                    f"differ by {measured.max_lsb:.2f} LSB on the photos: recorded as global"
                )
                self.spec = self.spec.replace(global_field=True, receptive_field=None)
            set_spec(model, self.spec.replace(precision="fp32"))
            onnx.save(model, str(self.fp32_tmp))
        self.fp32_model, self.export_info = model, export_info

    def artifact(self, precision: str) -> None:
        """Make, verify and stage ``model.<precision>.onnx`` with its golden samples, its ORT
        copy (``--ort-format``) and its manifest."""
        name = f"model.{precision}"
        tmp, settings, label = self._make(precision)
        # auto's model is an int8 one (some nodes may be float): int8's limits hold for it.
        base = "int8" if precision == "auto" else precision
        tolerance = tolerance_for(base, self.config.tolerances.get(precision))
        report = None
        if self.config.verify:
            report = verify(tmp, precision, self.refs, tolerance)
            self.failures += report.failures
        files = {"model": tmp, "golden": self.stage(f"{name}.golden.npz")}
        golden(files["golden"], precision, self.refs, tolerance)
        if self.config.ort_format:
            files["ort"] = self.stage(f"{name}.ort")
            _write_ort(tmp, files["ort"])
        fields = self._manifest(precision, files, settings, report, label)
        write_manifest(self.stage(f"{name}.manifest.json"), f"{name}.onnx", tmp, fields)
        self.artifacts.append(
            Artifact(
                precision,
                self.out / f"{name}.onnx",
                self.out / f"{name}.manifest.json",
                self.out / f"{name}.golden.npz",
                self.out / f"{name}.ort" if "ort" in files else None,
                report,
                tmp.stat().st_size,
            )
        )

    def _make(self, precision: str) -> tuple[Path, dict[str, Any], str]:
        """The staged model file, what the manifest records of how it was made, and the spec's
        precision."""
        assert self.fp32_model is not None
        name = f"model.{precision}.onnx"
        if precision == "fp32":
            self.staged.append((self.fp32_tmp, self.out / name))
            return self.fp32_tmp, {}, precision
        tmp = self.stage(name)
        if precision == "fp16":
            nodes: tuple[str, ...] = ()
            if self.config.fp16_block == "auto":
                nodes = _fp16_nodes(self.fp32_tmp, self.fp32_model, self.spec, self.config)
            onnx.save(fp16_mod.convert_fp16(self.fp32_model, node_block_list=nodes), str(tmp))
            _check_loads(tmp, name)
            return tmp, {"fp16": fp16_mod.settings(node_block_list=nodes)}, precision
        if precision == "int8":
            calibration = _quantize(
                self.fp32_tmp, tmp, self.module, self.spec, self.config, self.qat_record,
                self.source,
            )  # fmt: skip
            return tmp, {"calibration": calibration}, precision
        result = _auto(self.fp32_tmp, tmp, self.module, self.spec, self.config)
        return tmp, {"auto": result.to_dict()}, result.label

    def _manifest(
        self,
        precision: str,
        files: dict[str, Path],
        settings: dict[str, Any],
        report: Report | None,
        label: str,
    ) -> dict[str, Any]:
        """The manifest's fields after the model's own (file, sha256, size)."""
        import onnxruntime as ort

        name = f"model.{precision}"
        fields: dict[str, Any] = {
            "precision": precision,
            "opset": self.config.opset,
            "versions": {
                "edgegen": __version__,
                "onnx": onnx.__version__,
                "onnxruntime": ort.__version__,
                "torch": torch.__version__,
                "python": platform.python_version(),
            },
            "source": {
                "checkpoint": str(self.source) if self.source else None,
                "checkpoint_sha256": self.spec.provenance.checkpoint_sha256,
                **({"loader": self.loader} if self.loader else {}),
            },
            "spec": self.spec.replace(precision=label).to_dict(),
            "export": self.export_info,  # the fp32 graph's: exporter, onnxslim, tiled error
            **settings,
            "verification": report.to_dict() if report is not None else None,
        }
        suffixes = {"golden": "golden.npz", "ort": "ort"}
        for key, suffix in suffixes.items():
            if key in files:
                fields[key] = file_entry(f"{name}.{suffix}", files[key])
        return fields

    def commit(self) -> ExportResult:
        if self.failures:
            failed = VerificationFailed(self.failures, self.artifacts)
            failed.spec, failed.export_info = self.spec, self.export_info
            raise failed
        for tmp, final in self.staged:
            os.replace(tmp, final)
        return ExportResult(self.out, self.artifacts, self.spec, self.export_info)

    def final_names(self, text: str) -> str:
        """``text`` with each staged file's path replaced by its artifact's name."""
        for tmp, final in [(self.fp32_tmp, self.out / "model.fp32.onnx"), *self.staged]:
            text = text.replace(str(tmp), final.name)
        return text

    def clean_up(self) -> None:
        for tmp, _ in self.staged:
            tmp.unlink(missing_ok=True)
        self.fp32_tmp.unlink(missing_ok=True)


def _with_field(module: nn.Module, spec: ModelSpec) -> ModelSpec:
    """The spec with the receptive field measured, unless the architecture already states it."""
    if spec.receptive_field is not None or spec.global_field:
        return spec
    from .receptive import measure_receptive_field

    field = measure_receptive_field(module, spec)
    return spec.replace(receptive_field=field.receptive_field, global_field=field.global_field)


FP32_BATCH_LSB = 0.0255  # the batch check's limit where fp32's tolerance sets no max_lsb


def _batch_failures(path: Path, refs: References, max_lsb: float | None) -> list[str]:
    """The graph on two same-size samples at once computes what it does on each alone (the
    runtime batches same-size images), to fp32's tolerance on the images a person sees; a graph
    exported for a batch of one fails here.

    Images, not raw outputs: a network's raw output may lie far outside [0, 1] (random weights
    do), where a batch and its images alone differ by float rounding that no pixel shows."""
    import numpy as np

    from edgegen.runners import onnx_runner

    indices = [k for k, s in enumerate(refs.samples) if s.size == "37x53"][:2]
    if len(indices) < 2 or fixed_batch(onnx.load(str(path), load_external_data=False)):
        return []  # a graph for a batch of one says so; the runtime runs it image by image
    runner = onnx_runner(path, "onnxruntime", "cpu")
    pair = [refs.inputs[k] for k in indices]
    try:
        together = runner.infer(np.concatenate(pair))
        alone = [runner.infer(x) for x in pair]
    except EdgegenError as exc:
        reason = str(exc).replace(str(path), "model.fp32.onnx")
        return [f"fp32 at batch 2: {reason}"]
    if together.shape != (2, *alone[0].shape[1:]):
        return ["fp32 at batch 2: the graph computes a batch differently from its images alone"]
    seen_together = refs.images([together[i : i + 1] for i in range(2)], indices)
    seen_alone = refs.images(alone, indices)
    worst = max(
        float(np.abs(a - b).max()) * 255 for a, b in zip(seen_together, seen_alone, strict=True)
    )
    if worst > (max_lsb if max_lsb is not None else FP32_BATCH_LSB):
        return [
            f"fp32 at batch 2: the graph computes a batch differently from its images alone "
            f"(max {worst:.4f} LSB)"
        ]
    return []


def _check_loads(path: Path, name: str) -> None:
    """Can onnxruntime load the model at all? One line naming the model, not its staged file."""
    from edgegen.runtime.session import create_session

    try:
        create_session(path)
    except EdgegenError as exc:
        import onnxruntime as ort

        reason = str(exc).split(": ", 1)[-1]
        raise EdgegenError(f"onnxruntime {ort.__version__} cannot load {name}: {reason}") from None


def _prepare_out(out: Path) -> Path:
    """Create the output folder and prove it is writable, before any work is done."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".edgegen-probe.", suffix=".tmp"):
            pass
    except OSError as exc:
        raise EdgegenError(f"output folder {out} is not writable: {exc.strerror or exc}") from None
    return out


def _quantize(
    fp32_path: Path,
    out_path: Path,
    module: nn.Module,
    spec: ModelSpec,
    config: ExportConfig,
    qat_record: dict[str, Any] | None,
    source: Path | None,
) -> dict[str, Any]:
    from .calib import calibration_inputs
    from .int8 import quantize_int8

    calib = calibration_inputs(spec, config.calib, config.calib_count)
    if config.qat or qat_record is not None:
        from . import qat_ranges as qat

        with tempfile.TemporaryDirectory(prefix="edgegen-qat-") as scratch:
            if config.qat:  # fine-tune now, from the checkpoint's weights
                result = qat.run_qat(
                    module,
                    spec,
                    config.calib,
                    config.calib_count,
                    config.qat,
                    config.progress,
                    loss=config.qat_loss or "l1",
                )
                settings = qat.quantize_with_qat(
                    module, result, spec, config.opset, out_path, calib, config.per_channel,
                    Path(scratch), channel_pad=config.channel_pad,
                )  # fmt: skip
                settings["source"] = config.calib
                return settings
            assert qat_record is not None  # a QAT checkpoint: its weights, its ranges
            fp32_model = onnx.load(str(fp32_path))
            qparams = qat.qparams_from_record(qat_record, source or "checkpoint")
            settings = quantize_int8(
                fp32_path, out_path, calib, per_channel=config.per_channel,
                progress=config.progress, tensor_overrides=qat.overrides(fp32_model, qparams),
                channel_pad=config.channel_pad,
            )  # fmt: skip
            settings["qat"] = dict(qat_record)
            settings["qat"]["ranges_from"] = "checkpoint"
            settings["source"] = config.calib
            return settings
    settings = quantize_int8(
        fp32_path,
        out_path,
        calib,
        method=config.calib_method,
        per_channel=config.per_channel,
        progress=config.progress,
        channel_pad=config.channel_pad,
    )
    settings["source"] = config.calib
    return settings


def _fp16_nodes(
    fp32_path: Path, fp32_model: onnx.ModelProto, spec: ModelSpec, config: ExportConfig
) -> tuple[str, ...]:
    """Nodes whose fp16 output breaks fp16's tolerance, found on the ranking photos."""
    from .evalset import ranking_set
    from .sensitivity import fp16_block_nodes
    from .target import Measure

    tol = tolerance_for("fp16", config.tolerances.get("fp16"))

    def passes(m: Measure) -> bool:
        return (
            (tol.max_lsb is None or m.max_lsb <= tol.max_lsb)
            and (tol.max_pct_over_1lsb is None or m.pct_over_1lsb <= tol.max_pct_over_1lsb)
            and (tol.min_psnr_vs_torch is None or m.psnr_vs_fp32 >= tol.min_psnr_vs_torch)
            and (tol.max_gt_psnr_drop is None or m.psnr_drop <= tol.max_gt_psnr_drop)
        )

    ranking = ranking_set(spec, fp32_path)
    nodes, _ = fp16_block_nodes(fp32_model, ranking, passes, config.progress)
    return tuple(nodes)


def _auto(
    fp32_path: Path, out_path: Path, module: nn.Module, spec: ModelSpec, config: ExportConfig
) -> Any:
    from .auto import AUTO_QAT_STEPS, AutoSettings, search
    from .target import parse_target

    assert config.target is not None  # validate() insists
    settings = AutoSettings(
        calib=config.calib,
        calib_count=config.calib_count,
        calib_method=config.calib_method,
        per_channel=config.per_channel,
        channel_pad=config.channel_pad,
        val=config.val,
        qat_steps=AUTO_QAT_STEPS if config.qat is None else config.qat,
        qat_loss=config.qat_loss or "l1",
        opset=config.opset,
        progress=config.progress,
    )
    return search(fp32_path, out_path, spec, module, parse_target(config.target), settings)


def _write_ort(model_path: Path, ort_path: Path) -> None:
    """The ORT-format file for minimal/mobile onnxruntime builds, as onnxruntime's
    convert_onnx_models_to_ort writes it by default ("Fixed" style, for any target platform):
    every graph optimisation applied before saving, except the NCHWc transformer, whose blocked
    layout suits x86 only.

    The optimisations must be baked in: onnxruntime does not run its graph transformers on an
    ORT-format model at load time. Saved after basic optimisations only, an int8 model kept its
    QuantizeLinear/DequantizeLinear pairs around float convs and ran 5.7x slower than the same
    model as .onnx (91 vs 16 ms for the `small` denoiser at 256x256); with the int8 fusions
    (QLinearConv, QLinearAdd) baked in it runs as fast, with identical output."""
    from edgegen.runtime.session import create_session

    create_session(
        model_path,
        optimization="all",
        save_optimized=ort_path,
        save_format="ORT",
        disabled_optimizers=["NchwcTransformer"],
    )
