"""edgegen.models: the shipped pretrained models (data only).

One folder per model (denoise-blind, sr2): ``model.<precision>.onnx`` with export's manifest and
golden samples, ``metrics.json`` and a model card (``README.md``). ``edgegen models`` lists them
and :mod:`edgegen.runtime.zoo` finds them; ``make models`` reproduces them from their presets.
"""
