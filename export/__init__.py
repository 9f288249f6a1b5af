"""PyTorch checkpoint -> ONNX export, simplification and parity checks (the ``train`` extra)."""
