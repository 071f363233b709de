"""edgegen.train: architectures, data, degradations and the training loop (needs torch)."""
