"""edgegen.pipeline: the whole flow in one call (train, export, verify, compare, report), as
``edgegen pipeline`` and ``make demo`` run it.

from edgegen.pipeline import PipelineConfig, run_pipeline
result = run_pipeline(PipelineConfig(preset="denoise-small", steps=300, out="runs/demo"))
"""

from .flow import (
    AUTO_TARGET,
    DEMO_PRECISIONS,
    STAGES,
    PipelineConfig,
    PipelineResult,
    run_pipeline,
    summary_table,
)

__all__ = [
    "AUTO_TARGET",
    "DEMO_PRECISIONS",
    "STAGES",
    "PipelineConfig",
    "PipelineResult",
    "run_pipeline",
    "summary_table",
]
