"""edgegen.evaluation: how exported models are measured: degradations and held-out photo sets,
samples, comparison, per-layer analysis, benchmarks and the HTML report.

Nothing is imported here: ``edgegen.train`` reads the degradations and photo sets without
loading the comparison tools (or scikit-image, or onnx).
"""
