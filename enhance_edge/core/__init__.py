"""The upscaling core: the model file and its onnxruntime session (``model``), tiling, pixel
processing, the output size, the strength, the ``Upscaler`` and the single-file path it and every
front end share (``batch``: plan, read, upscale and write one file). Imports ``io`` (images,
files) and ``errors``; never ``eval`` or ``apps`` (tests/test_layers.py)."""
