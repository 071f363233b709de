"""edgegen.export: checkpoint or module -> verified ONNX artifacts (fp32, fp16, int8, auto).

from edgegen.export import ExportConfig, export_checkpoint, export_module
export_checkpoint("runs/dn", ExportConfig(out="export/dn", precision=("fp32", "int8")))
"""

from .transaction import (
    EXPORT_PRECISIONS,
    ExportConfig,
    ExportResult,
    VerificationFailed,
    export_checkpoint,
    export_module,
)

__all__ = [
    "EXPORT_PRECISIONS",
    "ExportConfig",
    "ExportResult",
    "VerificationFailed",
    "export_checkpoint",
    "export_module",
]
