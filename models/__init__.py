"""edgegen.models: shipped pretrained artifacts (data only; none shipped yet)."""
