"""Training of enhance-edge's face super-resolution GAN (PyTorch; the ``train`` extra)."""
