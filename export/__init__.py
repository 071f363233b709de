"""edgegen.export: checkpoint -> verified ONNX artifacts (fp32, fp16, int8).

Built by the export issue; the package exists now so that the layout is complete.
"""
